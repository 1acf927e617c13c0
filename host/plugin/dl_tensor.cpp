#include "host/plugin/dl_tensor.h"

namespace ph::host {

bool same_dtype(DLDataType a, DLDataType b) {
  return a.code == b.code && a.bits == b.bits && a.lanes == b.lanes;
}

int64_t element_count(const DLTensor& t) {
  int64_t n = 1;
  for (int i = 0; i < t.ndim; ++i) n *= t.shape[i];
  return n;
}

std::string shape_string(const DLTensor& t) {
  std::string s = "[";
  for (int i = 0; i < t.ndim; ++i) s += (i ? ", " : "") + std::to_string(t.shape[i]);
  return s + "]";
}

std::string dtype_string(DLDataType dtype) {
  std::string kind;
  switch (dtype.code) {
    case kDLInt:
      kind = "int";
      break;
    case kDLUInt:
      kind = "uint";
      break;
    case kDLFloat:
      kind = "float";
      break;
    case kDLBfloat:
      kind = "bfloat";
      break;
    default:
      kind = "type" + std::to_string(dtype.code) + "_";
      break;
  }
  std::string s = kind + std::to_string(dtype.bits);
  if (dtype.lanes != 1) s += "x" + std::to_string(dtype.lanes);
  return s;
}

bool has_shape(const DLTensor& t, std::initializer_list<int64_t> shape) {
  if (t.ndim != (int)shape.size()) return false;
  int i = 0;
  for (int64_t s : shape)
    if (t.shape[i++] != s) return false;
  return true;
}

std::vector<int64_t> element_strides(const DLTensor& t) {
  std::vector<int64_t> strides(t.ndim);
  int64_t compact = 1;
  for (int i = t.ndim - 1; i >= 0; --i) {
    strides[i] = t.strides ? t.strides[i] : compact;
    compact *= t.shape[i];
  }
  return strides;
}

bool is_compact(const DLTensor& t) {
  if (!t.strides) return true;
  int64_t compact = 1;
  for (int i = t.ndim - 1; i >= 0; --i) {
    // A dimension of size 1 is never stepped over, so its stride does not matter.
    if (t.shape[i] != 1 && t.strides[i] != compact) return false;
    compact *= t.shape[i];
  }
  return true;
}

std::string tensor_problem(const DLTensor* t, DLDataType dtype, int ndim) {
  if (!t) return "is null";
  if (t->device.device_type != kDLCPU)
    return "is not on the CPU (device type " + std::to_string((int)t->device.device_type) + ")";
  if (!same_dtype(t->dtype, dtype))
    return "has dtype " + dtype_string(t->dtype) + ", expected " + dtype_string(dtype);
  if (ndim >= 0 && t->ndim != ndim)
    return "has rank " + std::to_string(t->ndim) + ", expected " + std::to_string(ndim);
  if (t->ndim < 0) return "has a negative rank";
  if (t->ndim > 0 && !t->shape) return "has a null shape";
  for (int i = 0; i < t->ndim; ++i)
    if (t->shape[i] < 0) return "has a negative size in its shape " + shape_string(*t);
  if (!t->data && element_count(*t) > 0) return "has null data";
  return "";
}

}  // namespace ph::host
