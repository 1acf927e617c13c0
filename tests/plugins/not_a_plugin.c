/* Shared libraries that are not PromptHost v1 plugins, one per definition:
 *   PH_TEST_OTHER_FUNCTION  exports an unrelated function only (missing_symbol)
 *   PH_TEST_ENTRY_V2        exports ph_plugin_entry_v2, a future ABI's entry (entry_v2)
 *   PH_TEST_UNRESOLVED      needs a symbol nobody defines: dlopen(RTLD_NOW) fails (unresolved)
 * Built without the plugin version script (tests/plugins/CMakeLists.txt). */
#include <stddef.h>

#if defined(PH_TEST_OTHER_FUNCTION)
__attribute__((visibility("default"))) int prompthost_test_not_a_plugin(void) {
  return 42;
}
#elif defined(PH_TEST_ENTRY_V2)
__attribute__((visibility("default"))) const void* ph_plugin_entry_v2(void) {
  static const int table = 2;
  return &table;
}
#elif defined(PH_TEST_UNRESOLVED)
extern int prompthost_test_symbol_nobody_defines(void);
__attribute__((visibility("default"))) int prompthost_test_call_missing(void) {
  return prompthost_test_symbol_nobody_defines();
}
#else
#error "define one of PH_TEST_OTHER_FUNCTION, PH_TEST_ENTRY_V2, PH_TEST_UNRESOLVED"
#endif
