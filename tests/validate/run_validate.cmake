# Runs prompthost-validate on one plugin and checks its verdicts (cmake -P script).
#   -DVALIDATE=path          the prompthost-validate executable
#   -DPLUGIN=path            the plugin (or any file) to validate
#   -DARGS="a|b"             optional: more arguments, separated by |
#   -DEXPECT_CODE=N          the exit code it must return (a crash of the runner is a
#                            text such as "Segmentation fault" and never matches)
#   -DEXPECT_FAIL="a|b"      optional: checks that must fail; no other check may fail
#   -DEXPECT_STDOUT=regex    optional: stdout must match
#   -DJSON=1                 optional: stdout is a JSON report (no closing line)
#   -DPRELOAD=path           optional: a library to preload (LD_PRELOAD)
#   -DEXPECT_STDERR=regex    optional: stderr must match
# Unless EXPECT_CODE is 2 (usage error) or JSON is set, stdout must end with the closing
# line "N passed, N failed, N skipped".
cmake_policy(VERSION 3.25)
set(command "${VALIDATE}" "${PLUGIN}")
if(DEFINED ARGS)
  string(REPLACE "|" ";" args "${ARGS}")
  list(APPEND command ${args})
endif()
if(DEFINED PRELOAD)
  set(ENV{LD_PRELOAD} "${PRELOAD}")
  # Under AddressSanitizer, a library loaded before its runtime is otherwise refused.
  set(ENV{ASAN_OPTIONS} "$ENV{ASAN_OPTIONS}:verify_asan_link_order=0")
endif()
execute_process(COMMAND ${command} RESULT_VARIABLE code OUTPUT_VARIABLE out ERROR_VARIABLE err)
set(report "command: ${command}\nexit code: ${code}\nstdout:\n${out}\nstderr:\n${err}")
if(NOT code STREQUAL "${EXPECT_CODE}")
  message(FATAL_ERROR "expected exit code ${EXPECT_CODE}\n${report}")
endif()
if(NOT EXPECT_CODE STREQUAL "2" AND NOT JSON AND NOT out MATCHES "\n[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped\n$")
  message(FATAL_ERROR "stdout does not end with the closing line\n${report}")
endif()
if(DEFINED EXPECT_FAIL)
  string(REPLACE "|" ";" expected "${EXPECT_FAIL}")
  foreach(name ${expected})
    if(NOT out MATCHES "\nFAIL ${name}: ")
      message(FATAL_ERROR "expected a line 'FAIL ${name}: ...'\n${report}")
    endif()
  endforeach()
  string(REGEX MATCHALL "\nFAIL [a-z_]+:" fail_lines "${out}")
  foreach(line ${fail_lines})
    string(REGEX REPLACE "\nFAIL ([a-z_]+):" "\\1" name "${line}")
    if(NOT name IN_LIST expected)
      message(FATAL_ERROR "check ${name} failed too (expected only: ${EXPECT_FAIL})\n${report}")
    endif()
  endforeach()
endif()
if(DEFINED EXPECT_STDOUT AND NOT out MATCHES "${EXPECT_STDOUT}")
  message(FATAL_ERROR "stdout does not match '${EXPECT_STDOUT}'\n${report}")
endif()
if(DEFINED EXPECT_STDERR AND NOT err MATCHES "${EXPECT_STDERR}")
  message(FATAL_ERROR "stderr does not match '${EXPECT_STDERR}'\n${report}")
endif()
message(STATUS "ok: exit ${code}\n${out}")
