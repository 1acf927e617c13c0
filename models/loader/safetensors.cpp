#include "models/loader/safetensors.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>

#include <nlohmann/json.hpp>

#include "models/common/atomic_file.h"
#include "models/common/error.h"
#include "models/common/float_buffer.h"
#include "models/common/json_file.h"

// The format is little-endian and tensors are read in place: a big-endian host would need
// byte swapping everywhere.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors I/O assumes little-endian");

namespace ph {

namespace {

using nlohmann::json;

// A real header is a few hundred bytes per tensor; anything this large is corruption (or
// an attempt to make us allocate and parse gigabytes).
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

struct DTypeEntry {
  DType dtype;
  const char* name;
  size_t size;
};

constexpr DTypeEntry kDTypes[] = {
    {DType::kF64, "F64", 8},   {DType::kF32, "F32", 4}, {DType::kF16, "F16", 2},
    {DType::kBF16, "BF16", 2}, {DType::kI64, "I64", 8}, {DType::kI32, "I32", 4},
    {DType::kI16, "I16", 2},   {DType::kI8, "I8", 1},   {DType::kU8, "U8", 1},
    {DType::kBool, "BOOL", 1},
};

const DTypeEntry& entry(DType dtype) {
  for (const auto& e : kDTypes) {
    if (e.dtype == dtype) return e;
  }
  throw Error("internal error: unknown DType value");
}

std::string supported_dtypes() {
  std::string list;
  for (const auto& e : kDTypes) list += (list.empty() ? "" : ", ") + std::string(e.name);
  return list;
}

// a * b, or false when it does not fit a size_t.
bool checked_mul(size_t a, size_t b, size_t* out) {
  return !__builtin_mul_overflow(a, b, out);
}

std::string json_type(const json& value) {
  return value.type_name();
}

// Exact: every binary16 value is representable in binary32.
float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  const uint32_t mantissa = h & 0x3ffu;
  uint32_t bits;
  if (exponent == 0x1f) {
    bits = sign | 0x7f800000u | (mantissa << 13);  // infinity, NaN (payload kept)
  } else if (exponent != 0) {
    bits = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);  // normal: rebias
  } else if (mantissa == 0) {
    bits = sign;  // signed zero
  } else {
    // Subnormal half: mantissa * 2^-24, a normal float.
    const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -magnitude : magnitude;
  }
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// bfloat16 is the top half of a float32.
float bf16_to_float(uint16_t b) {
  const uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

template <typename T>
T load_unaligned(const uint8_t* p) {
  T value;
  std::memcpy(&value, p, sizeof value);
  return value;
}

}  // namespace

const char* dtype_name(DType dtype) {
  return entry(dtype).name;
}
size_t dtype_size(DType dtype) {
  return entry(dtype).size;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// ---------------------------------------------------------------------------------------
// Reading

namespace {

// Parses and checks one header entry. `data_size` is the length of the data section.
TensorInfo parse_entry(const std::string& path, const std::string& name, const json& value,
                       size_t data_size) {
  const std::string where = path + ": tensor '" + name + "': ";
  if (!value.is_object()) {
    throw Error(where + "header entry must be an object, found " + json_type(value));
  }
  TensorInfo info;
  info.name = name;

  const auto dtype = value.find("dtype");
  if (dtype == value.end()) throw Error(where + "missing 'dtype'");
  if (!dtype->is_string()) throw Error(where + "'dtype' must be a string");
  const std::string dtype_text = dtype->get<std::string>();
  const auto known = std::find_if(std::begin(kDTypes), std::end(kDTypes),
                                  [&](const DTypeEntry& e) { return dtype_text == e.name; });
  if (known == std::end(kDTypes)) {
    throw Error(where + "unknown dtype '" + dtype_text + "' (supported: " + supported_dtypes() +
                ")");
  }
  info.dtype = known->dtype;

  const auto shape = value.find("shape");
  if (shape == value.end()) throw Error(where + "missing 'shape'");
  if (!shape->is_array()) throw Error(where + "'shape' must be an array");
  size_t numel = 1;
  for (const json& dim : *shape) {
    if (dim.is_number_integer() && !dim.is_number_unsigned()) {
      throw Error(where + "negative dimension " + dim.dump() + " in shape " + shape->dump());
    }
    if (!dim.is_number_unsigned()) {
      throw Error(where + "shape " + shape->dump() + " must hold non-negative integers");
    }
    const uint64_t d = dim.get<uint64_t>();
    if (d > static_cast<uint64_t>(INT64_MAX) || !checked_mul(numel, d, &numel)) {
      throw Error(where + "element count of shape " + shape->dump() + " overflows");
    }
    info.shape.push_back(static_cast<int64_t>(d));
  }
  info.numel = numel;

  const auto offsets = value.find("data_offsets");
  if (offsets == value.end()) throw Error(where + "missing 'data_offsets'");
  if (!offsets->is_array() || offsets->size() != 2 || !(*offsets)[0].is_number_unsigned() ||
      !(*offsets)[1].is_number_unsigned()) {
    throw Error(where + "'data_offsets' must be two non-negative integers [begin, end], found " +
                offsets->dump());
  }
  const uint64_t begin = (*offsets)[0].get<uint64_t>();
  const uint64_t end = (*offsets)[1].get<uint64_t>();
  const std::string offsets_text =
      "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "]";
  if (end < begin) throw Error(where + offsets_text + ": end is before begin");
  if (end > data_size) {
    throw Error(where + offsets_text + " run past the end of the data section (" +
                std::to_string(data_size) + " bytes)");
  }
  info.begin = static_cast<size_t>(begin);
  info.end = static_cast<size_t>(end);

  const size_t element = known->size;
  size_t expected_bytes = 0;
  if (!checked_mul(numel, element, &expected_bytes)) {
    throw Error(where + "byte size of shape " + shape->dump() + " overflows");
  }
  if (info.end - info.begin != expected_bytes) {
    throw Error(where + offsets_text + " hold " + std::to_string(info.end - info.begin) +
                " bytes but shape " + shape_string(info.shape) + " of " + known->name + " needs " +
                std::to_string(expected_bytes));
  }
  // No alignment is required (the format has none; Python's safetensors packs tensors back
  // to back): every reader copies through memcpy unless the address suits the type.
  return info;
}

}  // namespace

SafetensorsFile::SafetensorsFile(const std::string& path)
    : file_(std::make_shared<MappedFile>(path)) {
  const size_t size = file_->size();
  if (size < 8) {
    throw Error(path + ": truncated safetensors file (" + std::to_string(size) +
                " bytes; the header length alone takes 8)");
  }
  const uint64_t header_bytes = load_unaligned<uint64_t>(file_->data());
  if (header_bytes > kMaxHeaderBytes) {
    throw Error(path + ": header length " + std::to_string(header_bytes) +
                " bytes exceeds the 100 MB limit (corrupt or not a safetensors file)");
  }
  if (header_bytes > size - 8) {
    throw Error(path + ": header length " + std::to_string(header_bytes) +
                " runs past the end of the file (" + std::to_string(size) + " bytes)");
  }
  data_start_ = 8 + static_cast<size_t>(header_bytes);
  const size_t data_size = size - data_start_;

  // nlohmann keeps the last of duplicate keys silently; a duplicated tensor name means two
  // conflicting definitions, so note it while parsing.
  std::string duplicate;
  std::set<std::string> seen;
  auto note_duplicates = [&](int depth, json::parse_event_t event, json& parsed) {
    check_json_depth(depth, event, path);
    if (event == json::parse_event_t::key && depth == 1 && duplicate.empty() &&
        !seen.insert(parsed.get<std::string>()).second) {
      duplicate = parsed.get<std::string>();
    }
    return true;
  };
  const char* text = reinterpret_cast<const char*>(file_->data()) + 8;
  json header;
  try {
    header = json::parse(text, text + header_bytes, note_duplicates);
  } catch (const json::exception& e) {
    throw Error(path + ": header is not valid JSON: " + e.what());
  }
  if (!header.is_object()) {
    throw Error(path + ": header must be a JSON object, found " + json_type(header));
  }
  if (!duplicate.empty()) throw Error(path + ": tensor '" + duplicate + "' appears twice");

  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") {
      if (!value.is_object()) throw Error(path + ": __metadata__ must be an object");
      for (const auto& [key, text_value] : value.items()) {
        if (!text_value.is_string()) {
          throw Error(path + ": __metadata__ entry '" + key + "' must be a string, found " +
                      json_type(text_value));
        }
        metadata_[key] = text_value.get<std::string>();
      }
      continue;
    }
    tensors_.push_back(parse_entry(path, name, value, data_size));
  }
  // header.items() iterates a std::map: tensors_ is sorted by name, as find() relies on.

  // No two tensors may share bytes (empty tensors hold none and cannot collide).
  std::vector<const TensorInfo*> by_offset;
  for (const auto& t : tensors_) {
    if (t.end > t.begin) by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const TensorInfo& a = *by_offset[i - 1];
    const TensorInfo& b = *by_offset[i];
    if (b.begin < a.end) {
      throw Error(path + ": tensors '" + a.name + "' [" + std::to_string(a.begin) + ", " +
                  std::to_string(a.end) + "] and '" + b.name + "' [" + std::to_string(b.begin) +
                  ", " + std::to_string(b.end) + "] overlap");
    }
  }
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  const auto it =
      std::lower_bound(tensors_.begin(), tensors_.end(), name,
                       [](const TensorInfo& t, const std::string& key) { return t.name < key; });
  return it != tensors_.end() && it->name == name ? &*it : nullptr;
}

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
  if (const TensorInfo* t = find(name)) return *t;
  throw Error(path() + ": no tensor '" + name + "'");
}

const uint8_t* SafetensorsFile::raw(const TensorInfo& tensor) const {
  return file_->data() + data_start_ + tensor.begin;
}

std::string SafetensorsFile::where(const TensorInfo& tensor) const {
  return path() + ": tensor '" + tensor.name + "'";
}

FloatTensor SafetensorsFile::to_float(const std::string& name) const {
  return to_float(info(name));
}

FloatTensor SafetensorsFile::to_float(const TensorInfo& tensor) const {
  FloatTensor out;
  out.shape = tensor.shape;
  out.numel = tensor.numel;
  const uint8_t* src = raw(tensor);

  if (tensor.dtype == DType::kF32 && reinterpret_cast<uintptr_t>(src) % alignof(float) == 0) {
    out.data = reinterpret_cast<const float*>(src);
    out.storage = file_;
    return out;
  }

  auto buffer = std::make_shared<FloatBuffer>(tensor.numel);
  float* dst = buffer->values.data();
  const size_t n = tensor.numel;
  switch (tensor.dtype) {
    case DType::kF32:  // unaligned in memory (header not padded): copy
      if (n) std::memcpy(dst, src, n * sizeof(float));
      break;
    case DType::kF16:
      for (size_t i = 0; i < n; ++i) dst[i] = half_to_float(load_unaligned<uint16_t>(src + 2 * i));
      break;
    case DType::kBF16:
      for (size_t i = 0; i < n; ++i) dst[i] = bf16_to_float(load_unaligned<uint16_t>(src + 2 * i));
      break;
    case DType::kF64:
      for (size_t i = 0; i < n; ++i) {
        dst[i] = static_cast<float>(load_unaligned<double>(src + 8 * i));
      }
      break;
    default:
      throw Error(where(tensor) + " is " + dtype_name(tensor.dtype) +
                  ", not a floating-point tensor (F32, F16, BF16 or F64)");
  }
  out.data = dst;
  out.copied = true;
  out.storage = std::move(buffer);
  return out;
}

std::vector<int64_t> SafetensorsFile::to_int64(const std::string& name) const {
  const TensorInfo& tensor = info(name);
  const uint8_t* src = raw(tensor);
  std::vector<int64_t> out(tensor.numel);
  if (tensor.dtype == DType::kI64) {
    if (!out.empty()) std::memcpy(out.data(), src, out.size() * sizeof(int64_t));
  } else if (tensor.dtype == DType::kI32) {
    for (size_t i = 0; i < out.size(); ++i) out[i] = load_unaligned<int32_t>(src + 4 * i);
  } else {
    throw Error(where(tensor) + " is " + dtype_name(tensor.dtype) +
                ", not an integer tensor (I64 or I32)");
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Writing

TensorToWrite f32_tensor(const std::string& name, const std::vector<int64_t>& shape,
                         const float* data) {
  return TensorToWrite{name, shape, DType::kF32, data};
}

TensorToWrite i64_tensor(const std::string& name, const std::vector<int64_t>& shape,
                         const int64_t* data) {
  return TensorToWrite{name, shape, DType::kI64, data};
}

void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  struct Planned {
    const TensorToWrite* tensor;
    size_t bytes;
  };
  std::vector<Planned> plan;
  std::set<std::string> names;
  for (const TensorToWrite& t : tensors) {
    const std::string where = path + ": tensor '" + t.name + "': ";
    if (t.name.empty() || t.name == "__metadata__") {
      throw Error(path + ": invalid tensor name '" + t.name + "'");
    }
    if (!names.insert(t.name).second) throw Error(where + "written twice");
    if (t.dtype != DType::kF32 && t.dtype != DType::kI64) {
      throw Error(where + "only F32 and I64 can be written, not " + dtype_name(t.dtype));
    }
    size_t bytes = dtype_size(t.dtype);
    for (int64_t d : t.shape) {
      if (d < 0) throw Error(where + "negative dimension in shape " + shape_string(t.shape));
      if (!checked_mul(bytes, static_cast<size_t>(d), &bytes)) {
        throw Error(where + "shape " + shape_string(t.shape) + " is too large");
      }
    }
    if (bytes > 0 && t.data == nullptr) throw Error(where + "no data");
    plan.push_back({&t, bytes});
  }
  // 8-byte elements first, then 4-byte ones: back to back, every tensor stays aligned
  // (the Python reader rejects gaps between tensors, so padding is not an option).
  std::sort(plan.begin(), plan.end(), [](const Planned& a, const Planned& b) {
    const size_t sa = dtype_size(a.tensor->dtype), sb = dtype_size(b.tensor->dtype);
    return sa != sb ? sa > sb : a.tensor->name < b.tensor->name;
  });

  json header = json::object();
  size_t offset = 0;
  for (const Planned& p : plan) {
    header[p.tensor->name] = {{"dtype", dtype_name(p.tensor->dtype)},
                              {"shape", p.tensor->shape},
                              {"data_offsets", {offset, offset + p.bytes}}};
    offset += p.bytes;
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string text;
  try {
    text = header.dump();
  } catch (const json::exception& e) {  // e.g. a name or metadata value that is not UTF-8
    throw Error(path + ": cannot encode the header: " + e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // so the data section starts 8-aligned
  const uint64_t header_bytes = text.size();

  AtomicFile file(path);
  file.write(&header_bytes, sizeof header_bytes);
  file.write(text);
  for (const Planned& p : plan) file.write(p.tensor->data, p.bytes);
  file.commit();
}

}  // namespace ph
