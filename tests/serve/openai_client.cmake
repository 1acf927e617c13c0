# The official OpenAI Node client against `prompthost serve` (cmake -P script; CTest test
# serve_openai_client): installs the `openai` npm package into NODE_DIR once, then runs
# openai_client.mjs, which starts the server on 127.0.0.1 and checks the models list, a
# plain and a streamed completion, the client's errors, and the exit on SIGTERM.
# Without node, npm or the registry (or with PROMPTHOST_NO_NETWORK set) it prints
# "SKIPPED: reason" and CTest reports the test skipped.
#   -DNODE_DIR=path    where the package goes (in the build folder)
#   -DSCRIPT=path      openai_client.mjs
#   -DPROMPTHOST=path  the prompthost executable
cmake_minimum_required(VERSION 3.16)
# 6.x: the newest line that runs on Debian 12's Node (7.x needs Node 22).
set(package openai@6.30.1)

include(${CMAKE_CURRENT_LIST_DIR}/../node_packages.cmake)
ph_node_packages(DIR "${NODE_DIR}" PACKAGES ${package} REQUIRE openai
                 MARKERS "${NODE_DIR}/node_modules/openai/package.json")
execute_process(COMMAND ${NODE} "${SCRIPT}" "${PROMPTHOST}" TIMEOUT 120 RESULT_VARIABLE code
                OUTPUT_VARIABLE out ERROR_VARIABLE err)
message(STATUS "${out}")
if(NOT code EQUAL 0)
  message(FATAL_ERROR "the OpenAI client test failed (exit code ${code}):\n${out}${err}")
endif()
