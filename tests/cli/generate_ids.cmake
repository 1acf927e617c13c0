# `prompthost generate --temperature 0 --print-ids` on the demo model (cmake -P script):
# the last line holds the generated ids, MAX_NEW of them (fewer only if the last is
# EOS, id 2), each inside the demo vocabulary, after some text; and the HF folder and the
# llama2.c checkpoint print the same ids. (Not the same text byte for byte: llama2.c's
# tokenizer.bin convention drops the space after a BOS, SentencePiece's keeps it.)
#   -DPROMPTHOST=path/to/prompthost -DDEMO=models/demo -DMAX_NEW=10
set(prompt "The computer")

function(run_generate model out_text out_ids)
  execute_process(
    COMMAND "${PROMPTHOST}" generate --model "${model}" --prompt "${prompt}"
            --max-new-tokens ${MAX_NEW} --temperature 0 --print-ids
    RESULT_VARIABLE code OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT code EQUAL 0)
    message(FATAL_ERROR "exit code ${code} for ${model}\nstdout:\n${out}\nstderr:\n${err}")
  endif()
  # Two lines: the continuation, then the ids.
  if(NOT out MATCHES "^(.*)\n([0-9]+( [0-9]+)*)\n$")
    message(FATAL_ERROR "no ids line at the end of the output of ${model}:\n${out}")
  endif()
  set(${out_text} "${CMAKE_MATCH_1}" PARENT_SCOPE)
  set(${out_ids} "${CMAKE_MATCH_2}" PARENT_SCOPE)
endfunction()

run_generate("${DEMO}/hf" text ids)
string(REPLACE " " ";" id_list "${ids}")
list(LENGTH id_list count)
list(GET id_list -1 last)
if(NOT (count EQUAL MAX_NEW OR (count LESS MAX_NEW AND last EQUAL 2)))
  message(FATAL_ERROR "expected ${MAX_NEW} ids (or fewer ending in EOS 2), got '${ids}'")
endif()
foreach(id ${id_list})
  if(id GREATER_EQUAL 1024)
    message(FATAL_ERROR "id ${id} is outside the demo vocabulary of 1024")
  endif()
endforeach()
if(NOT text MATCHES "[A-Za-z]")
  message(FATAL_ERROR "no text before the ids: '${text}'")
endif()

run_generate("${DEMO}/fortune-llama.bin" text_bin ids_bin)
if(NOT ids_bin STREQUAL ids)
  message(FATAL_ERROR "hf and llama2.c differ:\n hf:  ${text} | ${ids}\n bin: ${text_bin} | ${ids_bin}")
endif()
message(STATUS "${prompt}${text}\nids: ${ids}")
