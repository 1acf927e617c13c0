#include <string>

#include "models/common/error.h"
#include "models/families/family.h"

namespace ph {

const std::vector<const Family*>& all_families() {
  static const std::vector<const Family*> families = {
      &kLlamaFamily,
      &kGpt2Family,
      &kBloomFamily,
      &kGemmaFamily,
  };
  return families;
}

const Family& family_of(const std::string& model_type, const std::string& config_path) {
  std::string known;
  for (const Family* f : all_families())
    for (const std::string& t : f->model_types) {
      if (t == model_type) return *f;
      known += (known.empty() ? "" : ", ") + t;
    }
  throw Error(config_path + ": field 'model_type' is '" + model_type + "'; supported: " + known);
}

}  // namespace ph
