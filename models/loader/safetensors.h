// The safetensors format: an 8-byte little-endian header length, a JSON header
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}},
// then the raw little-endian tensor bytes, offsets relative to the start of that data.
//
// The reader treats the file as untrusted: every length, offset, shape and dtype is
// checked before any byte of tensor data is touched, and every error names the file
// and the tensor.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "models/common/mapped_file.h"

namespace ph {

enum class DType { kF64, kF32, kF16, kBF16, kI64, kI32, kI16, kI8, kU8, kBool };

const char* dtype_name(DType dtype);  // as spelled in the header: "F32", "BF16", ...
size_t dtype_size(DType dtype);       // bytes per element

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  size_t numel = 0;
  size_t begin = 0;  // byte offsets within the data section (after the header)
  size_t end = 0;
};

// "[2, 3]": for error messages.
std::string shape_string(const std::vector<int64_t>& shape);

// A tensor as float32. `data` points into the file mapping when the tensor is stored as
// float32 at a 4-byte aligned address (`copied` false), else into an owned buffer of
// widened or copied values. `storage` keeps whichever alive: copy it into a Model's
// storage to keep `data` valid as long as the Model.
struct FloatTensor {
  const float* data = nullptr;
  std::vector<int64_t> shape;
  size_t numel = 0;
  bool copied = false;
  std::shared_ptr<WeightStorage> storage;
};

class SafetensorsFile {
 public:
  // Maps and validates the whole header; throws ph::Error naming the file (and the
  // tensor) on any inconsistency.
  explicit SafetensorsFile(const std::string& path);

  const std::string& path() const { return file_->path(); }
  const std::shared_ptr<MappedFile>& mapping() const { return file_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Every tensor, sorted by name.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }

  // nullptr when the file has no tensor of that name.
  const TensorInfo* find(const std::string& name) const;
  // Throws ph::Error naming the file and the tensor when absent.
  const TensorInfo& info(const std::string& name) const;

  // The tensor's bytes in the mapping (end - begin of them; may be unaligned).
  const uint8_t* raw(const TensorInfo& tensor) const;

  // F32 (zero-copy when aligned), F16 and BF16 (widened exactly), F64 (narrowed, for
  // reference fixtures). Any other dtype is an error.
  FloatTensor to_float(const std::string& name) const;
  FloatTensor to_float(const TensorInfo& tensor) const;
  // I64, or I32 widened. Any other dtype is an error.
  std::vector<int64_t> to_int64(const std::string& name) const;

 private:
  std::string where(const TensorInfo& tensor) const;

  std::shared_ptr<MappedFile> file_;
  size_t data_start_ = 0;  // file offset of the data section
  std::map<std::string, std::string> metadata_;
  std::vector<TensorInfo> tensors_;
};

// A tensor to write: numel(shape) elements of `dtype` (F32 or I64) at `data`, borrowed
// for the duration of the call.
struct TensorToWrite {
  std::string name;
  std::vector<int64_t> shape;
  DType dtype = DType::kF32;
  const void* data = nullptr;
};

TensorToWrite f32_tensor(const std::string& name, const std::vector<int64_t>& shape,
                         const float* data);
TensorToWrite i64_tensor(const std::string& name, const std::vector<int64_t>& shape,
                         const int64_t* data);

// Writes a safetensors file readable by the Python `safetensors` package: tensors laid
// out back to back (8-byte dtypes first, so every tensor stays aligned), header padded
// to 8 bytes. Written to `path`.tmp, flushed, then renamed over `path`, so a crash never
// leaves a half-written file. Throws ph::Error naming the path or the tensor.
void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace ph
