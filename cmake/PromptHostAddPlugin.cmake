# prompthost_add_plugin(NAME SOURCES src... [OUTPUT_DIRECTORY dir]
#                       [INSTALL_DESTINATION dir | NO_INSTALL])
#
# Builds a method plugin the way the ABI requires (sdk/include/prompthost_sdk/plugin_abi.h):
# a shared library named ph_<NAME>.so that exports exactly one symbol,
# ph_plugin_entry_v1 (a linker version script hides everything else, so the library can
# be unloaded and two plugins never bind to each other's C++ symbols), built with hidden
# visibility and no undefined symbols (-z defs). Used in-tree and by the installed
# package (find_package(PromptHost)); links the SDK target PromptHost::sdk.
#
# `cmake --install` puts the plugin in <prefix>/${PROMPTHOST_PLUGIN_INSTALL_DIR}
# (lib/prompthost/plugins, where an installed `prompthost` looks), component "plugins",
# unless INSTALL_DESTINATION (relative to the prefix) says otherwise. NO_INSTALL, or the
# variable PROMPTHOST_PLUGIN_INSTALL set to OFF in the calling scope (tests/ does, for its
# test plugins), adds no install rule.
include_guard(GLOBAL)

if(NOT DEFINED PROMPTHOST_PLUGIN_INSTALL_DIR)
  set(PROMPTHOST_PLUGIN_INSTALL_DIR "lib/prompthost/plugins")
endif()

function(prompthost_add_plugin name)
  cmake_parse_arguments(ARG "NO_INSTALL" "OUTPUT_DIRECTORY;INSTALL_DESTINATION" "SOURCES" ${ARGN})
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "prompthost_add_plugin(${name}): no SOURCES")
  endif()
  if(ARG_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "prompthost_add_plugin(${name}): unknown arguments ${ARG_UNPARSED_ARGUMENTS}")
  endif()
  # The version script sits beside this file, in-tree (cmake/) and installed
  # (lib/cmake/PromptHost/); found from the function's own file so that it works from any
  # directory scope.
  set(version_script "${CMAKE_CURRENT_FUNCTION_LIST_DIR}/prompthost_plugin.map")
  add_library(${name} MODULE ${ARG_SOURCES})
  set_target_properties(${name} PROPERTIES
    PREFIX ""
    OUTPUT_NAME "ph_${name}"
    CXX_VISIBILITY_PRESET hidden
    C_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    POSITION_INDEPENDENT_CODE ON
    LINK_DEPENDS "${version_script}")
  if(ARG_OUTPUT_DIRECTORY)
    set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY "${ARG_OUTPUT_DIRECTORY}")
  endif()
  target_compile_features(${name} PRIVATE cxx_std_17)
  target_link_libraries(${name} PRIVATE PromptHost::sdk)
  target_link_options(${name} PRIVATE "LINKER:--version-script=${version_script}")
  # Every symbol resolved at link time (-z,defs), except in the sanitizer and fuzz builds:
  # there the sanitizer runtime lives in the executable and a plugin finds it when loaded.
  if(NOT PROMPTHOST_SANITIZE AND NOT PROMPTHOST_FUZZ)
    target_link_options(${name} PRIVATE "LINKER:-z,defs")
  endif()
  if(DEFINED PROMPTHOST_PLUGIN_INSTALL AND NOT PROMPTHOST_PLUGIN_INSTALL)
    set(ARG_NO_INSTALL TRUE)
  endif()
  if(NOT ARG_NO_INSTALL)
    if(NOT ARG_INSTALL_DESTINATION)
      set(ARG_INSTALL_DESTINATION "${PROMPTHOST_PLUGIN_INSTALL_DIR}")
    endif()
    if(NOT ARG_INSTALL_DESTINATION)  # called from a scope that never saw the default
      set(ARG_INSTALL_DESTINATION "lib/prompthost/plugins")
    endif()
    install(TARGETS ${name} LIBRARY DESTINATION "${ARG_INSTALL_DESTINATION}" COMPONENT plugins)
  endif()
endfunction()
