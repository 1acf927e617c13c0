// load_model: picks the loader from what the path is. Also Model::allocate, the owned
// buffers loaders build (fused or converted weights).
#include <filesystem>

#include "models/common/error.h"
#include "models/common/float_buffer.h"
#include "models/engine/model.h"
#include "models/loader/hf_folder.h"
#include "models/loader/llama2c.h"

namespace ph {

float* Model::allocate(size_t count) {
  auto buffer = std::make_shared<FloatBuffer>(count);
  storage.push_back(buffer);
  return buffer->values.data();
}

Model load_model(const std::string& path) {
  namespace fs = std::filesystem;
  const fs::path p(path);
  std::error_code ec;
  const fs::file_status status = fs::status(p, ec);
  if (ec || !fs::exists(status))
    throw Error("cannot load model " + path + ": no such file or folder");
  if (fs::is_directory(status)) return load_hf_folder(path);

  const std::string ext = p.extension().string();
  if (ext == ".bin") return load_llama2c(path);
  if (ext == ".safetensors") {
    // A folder's own weights (model.safetensors or a shard of its index) load as the
    // folder; any other name is the one weights file to read with the folder's config.
    const fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
    const bool folder_weights =
        p.filename() == "model.safetensors" || fs::exists(dir / "model.safetensors.index.json");
    return load_hf_folder(dir.string(), folder_weights ? "" : path);
  }
  throw Error("cannot load model " + path +
              ": expected a Hugging Face folder, a .safetensors file in one, or a llama2.c .bin");
}

}  // namespace ph
