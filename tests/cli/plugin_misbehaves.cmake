# `prompthost` with a plugin that crashes or hangs in the call $PH_TEST_MISBEHAVE names
# (tests/plugins/misbehave.h), run as a user would (cmake -P script).
#   -DPROMPTHOST=path   the prompthost executable
#   -DPLUGIN_DIR=path   the test plugins' folder
#   -DDATA=path         a JSONL training file
#   -DWORK=path         a scratch folder (emptied first)
#   -DCASE=name         crash_in_training: a crash after a checkpoint is reported (the
#                         plugin and the call), the process exits non-zero, and --resume
#                         from the checkpoint ends exactly as a run never interrupted;
#                       hang_in_training, hang_in_generate: --plugin-timeout stops a
#                         hung call with exit code 1, naming the plugin and the call
cmake_policy(VERSION 3.25)
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}")
set(train "${PROMPTHOST}" train --plugin-path "${PLUGIN_DIR}" --data "${DATA}" --batch-size 4
          --threads 1 --seed 3 -q)

# Runs the command (a hang is cut at 120 s); sets code, out, err and report.
macro(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE code OUTPUT_VARIABLE out ERROR_VARIABLE err
                  TIMEOUT 120)
  set(report "command: ${ARGN}\nexit code: ${code}\nstdout:\n${out}\nstderr:\n${err}")
endmacro()

# Runs the command, which must succeed; sets out and report in the caller.
function(expect_success)
  run(${ARGN})
  if(NOT code STREQUAL "0")
    message(FATAL_ERROR "expected success\n${report}")
  endif()
  set(out "${out}" PARENT_SCOPE)
  set(report "${report}" PARENT_SCOPE)
endfunction()

# The misbehaving run: an exit code matching code_regex and never 0 (a crash's is the
# signal's, or a sanitizer's), and stderr matching stderr_regex (the plugin and the call).
function(expect_stopped code_regex stderr_regex)
  run(${ARGN})
  if(code STREQUAL "0" OR NOT code MATCHES "${code_regex}")
    message(FATAL_ERROR "expected an exit code matching '${code_regex}' (not 0)\n${report}")
  endif()
  if(NOT err MATCHES "${stderr_regex}")
    message(FATAL_ERROR "stderr does not match '${stderr_regex}'\n${report}")
  endif()
  message(STATUS "stopped as expected: exit ${code}\n${err}")
endfunction()

if(CASE STREQUAL "crash_in_training")
  set(run_args --plugin crashes_on_request --max-steps 4 --save-every 2)
  expect_success(${train} ${run_args} --output "${WORK}/whole")
  set(ENV{PH_TEST_MISBEHAVE} "forward@2")  # the third step, after the checkpoint at step 2
  expect_stopped(".*" "plugin \"crashes_on_request\" crashed in its forward call \\(SIGSEGV"
                 ${train} ${run_args} --output "${WORK}/crashed")
  unset(ENV{PH_TEST_MISBEHAVE})
  expect_success("${PROMPTHOST}" train --resume "${WORK}/crashed" --plugin-path "${PLUGIN_DIR}"
                 --threads 1 -q)
  if(NOT out MATCHES "crashes_on_request: 4 steps")
    message(FATAL_ERROR "the resumed run did not end at step 4\n${report}")
  endif()
  foreach(file adapter_model.safetensors training_state.safetensors)
    execute_process(COMMAND "${CMAKE_COMMAND}" -E compare_files "${WORK}/whole/${file}"
                            "${WORK}/crashed/${file}" RESULT_VARIABLE differ)
    if(NOT differ STREQUAL "0")
      message(FATAL_ERROR "${file}: the run resumed after the crash differs from the whole run")
    endif()
  endforeach()
elseif(CASE STREQUAL "hang_in_training")
  set(ENV{PH_TEST_MISBEHAVE} "backward@1")
  expect_stopped("^1$"
                 "plugin \"hangs_on_request\" has been in its backward call for [0-9.]+ s, longer than --plugin-timeout 0.5; stopping"
                 ${train} --plugin hangs_on_request --max-steps 3 --plugin-timeout 0.5
                 --output "${WORK}/hung")
elseif(CASE STREQUAL "hang_in_generate")
  expect_success(${train} --plugin hangs_on_request --max-steps 1 --output "${WORK}/adapter")
  set(ENV{PH_TEST_MISBEHAVE} "forward")
  expect_stopped("^1$"
                 "plugin \"hangs_on_request\" has been in its forward call for [0-9.]+ s, longer than --plugin-timeout 0.5; stopping"
                 "${PROMPTHOST}" generate --adapter "${WORK}/adapter" --plugin-path "${PLUGIN_DIR}"
                 --prompt "The computer" --max-new-tokens 2 --plugin-timeout 0.5)
else()
  message(FATAL_ERROR "unknown CASE '${CASE}'")
endif()
