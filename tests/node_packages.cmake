# For the CTest scripts that run npm packages (cli/tokenizer_reference.cmake,
# serve/openai_client.cmake; include()d, cmake -P): the packages installed once into a
# folder, or the calling script ended with "SKIPPED: reason", which CTest's
# SKIP_REGULAR_EXPRESSION reports as a skip (no network, node, npm or registry).

# Ends the calling script with success and the reason. A macro, so that return() leaves
# the script, not a function scope.
macro(skip reason)
  message(STATUS "SKIPPED: ${reason}")
  return()
endmacro()

# ph_node_packages(DIR dir PACKAGES pkg@version... MARKERS file... REQUIRE module)
# Installs PACKAGES into DIR unless every MARKERS file (paths the packages install) is
# there, checks that `node -e "require('REQUIRE')"` loads, sets NODE to the node executable
# and ENV{NODE_PATH} to DIR/node_modules. Skips (above) when PROMPTHOST_NO_NETWORK is set,
# without node or npm, when npm install fails or the module does not load.
macro(ph_node_packages)
  cmake_parse_arguments(NP "" "DIR;REQUIRE" "PACKAGES;MARKERS" ${ARGN})
  if(DEFINED ENV{PROMPTHOST_NO_NETWORK})
    skip("PROMPTHOST_NO_NETWORK is set")
  endif()
  find_program(NODE node)
  find_program(NPM npm)
  if(NOT NODE OR NOT NPM)
    skip("node and npm are needed (Debian: apt-get install nodejs npm)")
  endif()
  set(np_missing FALSE)
  foreach(np_marker ${NP_MARKERS})
    if(NOT EXISTS "${np_marker}")
      set(np_missing TRUE)
    endif()
  endforeach()
  if(np_missing)
    file(MAKE_DIRECTORY "${NP_DIR}")
    execute_process(COMMAND ${NPM} install --prefix "${NP_DIR}" --no-audit --no-fund ${NP_PACKAGES}
                    RESULT_VARIABLE np_code OUTPUT_VARIABLE np_out ERROR_VARIABLE np_err)
    if(NOT np_code EQUAL 0)
      skip("npm install ${NP_PACKAGES} failed (no registry?):\n${np_err}")
    endif()
  endif()
  execute_process(COMMAND ${NODE} -e "require('${NP_REQUIRE}')" WORKING_DIRECTORY "${NP_DIR}"
                  RESULT_VARIABLE np_code ERROR_VARIABLE np_err)
  if(NOT np_code EQUAL 0)
    skip("the ${NP_REQUIRE} npm package does not load with this Node:\n${np_err}")
  endif()
  set(ENV{NODE_PATH} "${NP_DIR}/node_modules")
endmacro()
