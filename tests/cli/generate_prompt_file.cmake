# `prompthost generate --prompt-file` (cmake -P script): a file and standard input ("-")
# give what --prompt gives (the file's final newline is not part of the prompt), and a
# prompt longer than one command-line argument may be (128 KiB on Linux) gets in, to be
# judged against the model's context like any other.
#   -DPROMPTHOST=path/to/prompthost -DWORK=folder/for/the/files
set(prompt "The computer")
file(MAKE_DIRECTORY "${WORK}")
file(WRITE "${WORK}/prompt.txt" "${prompt}\n")
set(common generate --temperature 0 --max-new-tokens 8 --print-ids)

function(run_generate expected_code out_var err_var)
  execute_process(COMMAND "${PROMPTHOST}" ${common} ${ARGN}
                  RESULT_VARIABLE code OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT code EQUAL expected_code)
    message(FATAL_ERROR "exit code ${code}, not ${expected_code}: ${ARGN}\nstdout:\n${out}\nstderr:\n${err}")
  endif()
  set(${out_var} "${out}" PARENT_SCOPE)
  set(${err_var} "${err}" PARENT_SCOPE)
endfunction()

run_generate(0 by_argument err --prompt "${prompt}")
run_generate(0 by_file err --prompt-file "${WORK}/prompt.txt")
run_generate(0 by_stdin err --prompt-file - INPUT_FILE "${WORK}/prompt.txt")
if(NOT by_argument MATCHES "\n[0-9]+( [0-9]+)*\n$")
  message(FATAL_ERROR "no ids at the end of the output:\n${by_argument}")
endif()
if(NOT by_file STREQUAL by_argument OR NOT by_stdin STREQUAL by_argument)
  message(FATAL_ERROR "--prompt, --prompt-file and standard input differ:\n"
                      "${by_argument}\n--\n${by_file}\n--\n${by_stdin}")
endif()

string(REPEAT "the computer is a fortune " 8000 long_prompt)  # 208,000 bytes
file(WRITE "${WORK}/long.txt" "${long_prompt}")
run_generate(1 out err --prompt-file "${WORK}/long.txt")
if(NOT err MATCHES "context of 256")
  message(FATAL_ERROR "the long prompt was not judged against the context:\n${err}")
endif()
message(STATUS "${prompt}: ${by_argument}")
