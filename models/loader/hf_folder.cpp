#include "models/loader/hf_folder.h"

#include <filesystem>

#include "models/common/error.h"
#include "models/families/family.h"
#include "models/loader/tensor_reader.h"

namespace ph {

Model load_hf_folder(const std::string& dir, const std::string& weights_file) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(dir)) throw Error(dir + ": not a model folder");
  const std::string config_path = (fs::path(dir) / "config.json").string();
  Model model;
  model.config = parse_hf_config(config_path);
  model.layers.resize(model.config.n_layers);

  const WeightFiles files(dir, weights_file);
  TensorReader reader(files, model);
  family_of(model.config.model_type, config_path).load_weights(reader, model, dir);
  return model;
}

}  // namespace ph
