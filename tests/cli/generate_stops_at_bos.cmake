# `prompthost generate --prompt "" --temperature 0 --print-ids` on a llama2.c .bin stops
# where llama2.c's `run.c -t 0` stops: at the first BOS (id 1) the model generates, which
# ends the ids line; no "end of the context" notice. REFERENCE, when given, is the same
# network as a Hugging Face folder, which stops at EOS only: its greedy ids must agree up
# to that BOS and go on past it (so the BOS is what stopped the .bin). (cmake -P script)
#   -DPROMPTHOST=path -DMODEL=x.bin [-DTOKENIZER=path] [-DREFERENCE=folder] -DMAX_NEW=N
function(greedy_ids model tokenizer out_ids out_err)
  set(tokenizer_option "")
  if(tokenizer)
    set(tokenizer_option --tokenizer "${tokenizer}")
  endif()
  # The empty prompt is written out here: an empty element of a list variable would vanish.
  execute_process(
    COMMAND "${PROMPTHOST}" generate --model "${model}" ${tokenizer_option} --prompt ""
            --temperature 0 --max-new-tokens ${MAX_NEW} --print-ids
    RESULT_VARIABLE code OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT code EQUAL 0)
    message(FATAL_ERROR "exit code ${code} for ${model}\nstdout:\n${out}\nstderr:\n${err}")
  endif()
  if(NOT out MATCHES "\n([0-9]+( [0-9]+)*)\n$")
    message(FATAL_ERROR "no ids line at the end of the output of ${model}:\n${out}")
  endif()
  string(REPLACE " " ";" ids "${CMAKE_MATCH_1}")
  set(${out_ids} "${ids}" PARENT_SCOPE)
  set(${out_err} "${err}" PARENT_SCOPE)
endfunction()

greedy_ids("${MODEL}" "${TOKENIZER}" ids err)
list(FIND ids 1 first_bos)
list(LENGTH ids count)
math(EXPR last "${count} - 1")
if(NOT first_bos EQUAL last)
  message(FATAL_ERROR "${MODEL}: the ids must end at the first BOS (1): ${ids}")
endif()
if(err MATCHES "end of the model's context")
  message(FATAL_ERROR "${MODEL}: reported the end of the context:\n${err}")
endif()

if(REFERENCE)
  greedy_ids("${REFERENCE}" "" reference reference_err)
  list(LENGTH reference reference_count)
  if(NOT reference_count GREATER count)
    message(FATAL_ERROR "${REFERENCE} did not go on past the BOS: ${reference}")
  endif()
  list(SUBLIST reference 0 ${count} reference_head)
  if(NOT reference_head STREQUAL ids)
    message(FATAL_ERROR "${MODEL} and ${REFERENCE} differ:\n ${ids}\n ${reference}")
  endif()
endif()
message(STATUS "${MODEL}: ${count} ids, the last the first BOS: ${ids}")
