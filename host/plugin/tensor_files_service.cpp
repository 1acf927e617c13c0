// ph.host.tensor-files/1 (see tensor_files_service.h). Every error names the file and the
// tensor; outputs are written only once everything was checked.
#include "host/plugin/tensor_files_service.h"

#include <cstring>
#include <filesystem>
#include <fstream>

#include "host/plugin/dl_tensor.h"
#include "host/plugin/status.h"
#include "models/loader/safetensors.h"

namespace ph::host {

namespace {

namespace fs = std::filesystem;

constexpr int kMaxRank = 8;  // the ABI's shape buffer

// A failure with its status code, turned into a status by serve().
struct Failure {
  ph_code code;
  std::string message;
};

std::string prefix(const char* call) {
  return std::string("ph.host.tensor-files/1 ") + call + ": ";
}

// Opens the file `path` names, or throws a Failure naming it.
SafetensorsFile open(const char* path) {
  if (!path || !*path) throw Failure{PH_ERR_INVALID_ARGUMENT, "no path given"};
  const std::string file = tensor_file_of(path);
  std::error_code ec;
  if (fs::is_directory(path, ec) && !fs::exists(file, ec))
    throw Failure{PH_ERR_IO,
                  std::string("'") + path + "' is a folder without adapter_model.safetensors"};
  if (!fs::exists(file, ec)) throw Failure{PH_ERR_IO, "'" + file + "' does not exist"};
  if (!fs::is_regular_file(file, ec)) throw Failure{PH_ERR_IO, "'" + file + "' is not a file"};
  if (!std::ifstream(file, std::ios::binary))
    throw Failure{PH_ERR_IO, "'" + file + "' cannot be opened for reading"};
  try {
    return SafetensorsFile(file);
  } catch (const std::exception& e) {
    throw Failure{PH_ERR_DATA_LOSS, e.what()};
  }
}

const TensorInfo& find(const SafetensorsFile& f, const char* name) {
  if (!name) throw Failure{PH_ERR_INVALID_ARGUMENT, "'" + f.path() + "': no tensor name given"};
  const TensorInfo* t = f.find(name);
  if (!t) {
    std::string have;
    for (const auto& info : f.tensors()) have += (have.empty() ? "" : ", ") + info.name;
    throw Failure{PH_ERR_INVALID_ARGUMENT, "'" + f.path() + "' has no tensor '" + name +
                                               "' (it has: " + (have.empty() ? "none" : have) +
                                               ")"};
  }
  return *t;
}

template <class Body>
ph_status* serve(const char* call, Body&& body) noexcept {
  try {
    body();
    return nullptr;
  } catch (const Failure& f) {
    return new_status(f.code, prefix(call) + f.message);
  } catch (const std::bad_alloc&) {
    return new_status(PH_ERR_OUT_OF_MEMORY, prefix(call) + "out of memory");
  } catch (const std::exception& e) {
    return new_status(PH_ERR_INTERNAL, prefix(call) + e.what());
  }
}

ph_status* tensor_shape(const ph_host*, const char* path, const char* name, int32_t* ndim,
                        int64_t* shape) {
  return serve("tensor_shape", [&] {
    if (!ndim || !shape) throw Failure{PH_ERR_INVALID_ARGUMENT, "ndim and shape must not be NULL"};
    const SafetensorsFile f = open(path);
    const TensorInfo& t = find(f, name);
    if ((int)t.shape.size() > kMaxRank)
      throw Failure{PH_ERR_UNSUPPORTED, "'" + f.path() + "': tensor '" + t.name + "' has rank " +
                                            std::to_string(t.shape.size()) + ", more than " +
                                            std::to_string(kMaxRank)};
    *ndim = (int32_t)t.shape.size();
    for (size_t i = 0; i < t.shape.size(); ++i) shape[i] = t.shape[i];
  });
}

ph_status* read_tensor(const ph_host*, const char* path, const char* name, DLTensor* out) {
  return serve("read_tensor", [&] {
    const SafetensorsFile f = open(path);
    const TensorInfo& t = find(f, name);
    const std::string where = "'" + f.path() + "': tensor '" + t.name + "'";
    if (t.dtype != DType::kF32 && t.dtype != DType::kF16 && t.dtype != DType::kBF16 &&
        t.dtype != DType::kF64)
      throw Failure{PH_ERR_INVALID_ARGUMENT,
                    where + " is " + dtype_name(t.dtype) + ", not a floating-point tensor"};
    const std::string problem = tensor_problem(out, kFloat32, (int)t.shape.size());
    if (!problem.empty())
      throw Failure{PH_ERR_INVALID_ARGUMENT,
                    where + " " + ph::shape_string(t.shape) + ": the output tensor " + problem};
    for (size_t i = 0; i < t.shape.size(); ++i)
      if (out->shape[i] != t.shape[i])
        throw Failure{PH_ERR_INVALID_ARGUMENT, where + " has shape " + ph::shape_string(t.shape) +
                                                   ", the output tensor " +
                                                   host::shape_string(*out)};
    FloatTensor values;
    try {
      values = f.to_float(t);
    } catch (const std::exception& e) {
      throw Failure{PH_ERR_DATA_LOSS, e.what()};
    }
    float* base = element_base<float>(*out);
    for_each_offset(*out, [&](int64_t i, int64_t offset) { base[offset] = values.data[i]; });
  });
}

}  // namespace

std::string tensor_file_of(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) return (fs::path(path) / "adapter_model.safetensors").string();
  return path;
}

const ph_host_tensor_files* tensor_files_service() {
  static const ph_host_tensor_files table = {sizeof(ph_host_tensor_files), &tensor_shape,
                                             &read_tensor};
  return &table;
}

}  // namespace ph::host
