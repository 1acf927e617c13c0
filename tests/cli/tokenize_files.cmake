# `prompthost tokenize` through files and standard input, there and back (cmake -P script):
# the text of a file gives the same ids as the same text on standard input
# (--text-file -), and decoding those ids (read from standard input) gives the text back
# as the tokenizer's rule says: NFC-normalised (the "é" of `text` is "e" + U+0301 and comes
# back composed, as in `decoded`) and without the special token's literal text.
#   -DPROMPTHOST=path  -DTOKENIZER=path (the Qwen fixture)  -DWORK_DIR=path
cmake_minimum_required(VERSION 3.16)
set(text "Café <|im_start|>user\n日本語 👍\tx  \n")
set(decoded "Café user\n日本語 👍\tx  \n\n")  # and the newline tokenize prints

file(MAKE_DIRECTORY "${WORK_DIR}")
file(WRITE "${WORK_DIR}/text.txt" "${text}")

function(tokenize out input)
  execute_process(COMMAND "${PROMPTHOST}" tokenize --tokenizer "${TOKENIZER}" ${ARGN}
                  INPUT_FILE "${input}" RESULT_VARIABLE code OUTPUT_VARIABLE stdout
                  ERROR_VARIABLE stderr)
  if(NOT code EQUAL 0)
    message(FATAL_ERROR "prompthost tokenize ${ARGN}: exit code ${code}\n${stderr}")
  endif()
  set(${out} "${stdout}" PARENT_SCOPE)
endfunction()

tokenize(from_file "${WORK_DIR}/text.txt" --text-file "${WORK_DIR}/text.txt")
tokenize(from_stdin "${WORK_DIR}/text.txt" --text-file -)
if(NOT from_file STREQUAL from_stdin OR NOT from_file MATCHES "^[0-9]+( [0-9]+)+\n$")
  message(FATAL_ERROR "--text-file FILE gave '${from_file}', --text-file - gave '${from_stdin}'")
endif()

file(WRITE "${WORK_DIR}/ids.txt" "${from_file}")
tokenize(text_back "${WORK_DIR}/ids.txt" --decode --text-file -)
if(NOT text_back STREQUAL decoded)
  message(FATAL_ERROR "the ids ${from_file} decode to '${text_back}', not '${decoded}'")
endif()
message(STATUS "ok: ${from_file}")
