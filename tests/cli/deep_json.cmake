# The deep-nesting reproducers of shared/robustness/gen_deep.py, made here, handed to
# `prompthost` as a user would: each command must exit 1 with an error that names the
# file (it used to die with SIGSEGV).
#   -DPROMPTHOST=exe -DDEMO=models/demo -DWORK=scratch folder
set(depth 1000000)
string(REPEAT "[" ${depth} open)
string(REPEAT "]" ${depth} close)
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}/config_deep" "${WORK}/adapter_deep")

file(WRITE "${WORK}/tokenizer_deep.json"
  "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"pre_tokenizer\": ${open}${close}}")
file(WRITE "${WORK}/config_deep/config.json" "{\"model_type\": \"llama\", \"hidden_size\": ${open}${close}}")
file(COPY "${DEMO}/hf/tokenizer.model" DESTINATION "${WORK}/config_deep")
file(WRITE "${WORK}/adapter_deep/adapter_config.json"
  "{\"peft_type\": \"PROMPT_TUNING\", \"x\": ${open}${close}}")

function(expect_refused file)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE code OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT code STREQUAL "1" OR NOT err MATCHES "${file}.*nested deeper than")
    message(FATAL_ERROR "expected exit 1 naming ${file}\ncommand: ${ARGN}\nexit: ${code}\n"
                        "stdout: ${out}\nstderr: ${err}")
  endif()
  message(STATUS "ok: ${err}")
endfunction()

expect_refused("tokenizer_deep.json"
  "${PROMPTHOST}" generate --model "${DEMO}/hf" --tokenizer "${WORK}/tokenizer_deep.json" --prompt x)
expect_refused("config_deep/config.json" "${PROMPTHOST}" generate --model "${WORK}/config_deep" --prompt x)
expect_refused("adapter_deep/adapter_config.json" "${PROMPTHOST}" inspect "${WORK}/adapter_deep")
expect_refused("adapter_deep/adapter_config.json"
  "${PROMPTHOST}" generate --model "${DEMO}/hf" --adapter "${WORK}/adapter_deep" --prompt x)
