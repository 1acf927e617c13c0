# `cmake --install <build> --prefix P` (included last from the top-level CMakeLists.txt):
#
#   P/include/prompthost_sdk/...                     the SDK headers            component sdk
#   P/lib/cmake/PromptHost/                      the CMake package          component sdk
#       PromptHostConfig.cmake, PromptHostConfigVersion.cmake (SameMajorVersion),
#       PromptHostTargets.cmake (PromptHost::sdk), PromptHostAddPlugin.cmake,
#       prompthost_plugin.map
#   P/bin/prompthost, P/bin/prompthost-validate  the host and the conformance runner
#                                                                           component runtime
#   P/share/prompthost/demo/                     the bundled demo model and tasks, the
#                                                default of commands run without --model
#                                                                           component runtime
#   P/lib/prompthost/plugins/ph_<name>.so        the method plugins        component plugins
#                                                (installed by prompthost_add_plugin)
#
# A plugin project then uses find_package(PromptHost) with -DCMAKE_PREFIX_PATH=P; see
# examples/minimal_prompt_tuning and docs/writing-a-plugin.md. `--component sdk` installs
# the SDK alone (it needs nothing built).
include(CMakePackageConfigHelpers)

set(PROMPTHOST_INSTALL_INCLUDEDIR "include")
set(PROMPTHOST_INSTALL_BINDIR "bin")
set(PROMPTHOST_INSTALL_CMAKEDIR "lib/cmake/PromptHost")
# PROMPTHOST_PLUGIN_INSTALL_DIR (lib/prompthost/plugins) comes from PromptHostAddPlugin.cmake.

# The ABI version of the headers, for the package's PromptHost_ABI_MAJOR/MINOR.
file(STRINGS "${PROJECT_SOURCE_DIR}/sdk/include/prompthost_sdk/plugin_abi.h" _ph_abi_defines
     REGEX "^#define PH_ABI_(MAJOR|MINOR) [0-9]+$")
string(REGEX REPLACE ".*PH_ABI_MAJOR ([0-9]+).*" "\\1" PromptHost_ABI_MAJOR "${_ph_abi_defines}")
string(REGEX REPLACE ".*PH_ABI_MINOR ([0-9]+).*" "\\1" PromptHost_ABI_MINOR "${_ph_abi_defines}")
if(NOT PromptHost_ABI_MAJOR MATCHES "^[0-9]+$" OR NOT PromptHost_ABI_MINOR MATCHES "^[0-9]+$")
  message(FATAL_ERROR "cannot read PH_ABI_MAJOR/PH_ABI_MINOR from plugin_abi.h")
endif()

# --- the SDK: headers, the exported INTERFACE target, the package files
install(DIRECTORY "${PROJECT_SOURCE_DIR}/sdk/include/prompthost_sdk"
        DESTINATION "${PROMPTHOST_INSTALL_INCLUDEDIR}" COMPONENT sdk)
set_target_properties(ph_sdk PROPERTIES EXPORT_NAME sdk)
install(TARGETS ph_sdk EXPORT PromptHostTargets COMPONENT sdk)
install(EXPORT PromptHostTargets NAMESPACE PromptHost:: FILE PromptHostTargets.cmake
        DESTINATION "${PROMPTHOST_INSTALL_CMAKEDIR}" COMPONENT sdk)

configure_package_config_file("${PROJECT_SOURCE_DIR}/cmake/PromptHostConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/cmake/PromptHostConfig.cmake"
  INSTALL_DESTINATION "${PROMPTHOST_INSTALL_CMAKEDIR}"
  PATH_VARS PROMPTHOST_INSTALL_INCLUDEDIR PROMPTHOST_INSTALL_BINDIR PROMPTHOST_PLUGIN_INSTALL_DIR)
write_basic_package_version_file("${PROJECT_BINARY_DIR}/cmake/PromptHostConfigVersion.cmake"
  VERSION "${PROJECT_VERSION}" COMPATIBILITY SameMajorVersion)
install(FILES
  "${PROJECT_BINARY_DIR}/cmake/PromptHostConfig.cmake"
  "${PROJECT_BINARY_DIR}/cmake/PromptHostConfigVersion.cmake"
  "${PROJECT_SOURCE_DIR}/cmake/PromptHostAddPlugin.cmake"
  "${PROJECT_SOURCE_DIR}/cmake/prompthost_plugin.map"
  DESTINATION "${PROMPTHOST_INSTALL_CMAKEDIR}" COMPONENT sdk)

# --- the programs
install(TARGETS prompthost RUNTIME DESTINATION "${PROMPTHOST_INSTALL_BINDIR}" COMPONENT runtime)
if(TARGET prompthost-validate)
  install(TARGETS prompthost-validate
          RUNTIME DESTINATION "${PROMPTHOST_INSTALL_BINDIR}" COMPONENT runtime)
endif()

# The bundled demo (host/cli/bundled_demo.cpp finds it beside an installed prompthost).
install(DIRECTORY "${PROJECT_SOURCE_DIR}/models/demo/" DESTINATION "share/prompthost/demo"
        COMPONENT runtime)

# --- the plugins: each prompthost_add_plugin() call adds its own install rule (component
# plugins, destination ${PROMPTHOST_PLUGIN_INSTALL_DIR}).
