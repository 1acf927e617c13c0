// Checks and element iteration for DLTensors that cross the plugin ABI. A tensor from the
// other side may be strided and offset (DLPack allows both, the ABI requires honouring
// them), so host code never indexes `data` directly: it walks element offsets.
#pragma once

#include <dlpack/dlpack.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace ph::host {

constexpr DLDataType kFloat32 = {kDLFloat, 32, 1};
constexpr DLDataType kInt64 = {kDLInt, 64, 1};

bool same_dtype(DLDataType a, DLDataType b);
int64_t element_count(const DLTensor& t);
std::string shape_string(const DLTensor& t);  // "[2, 3]"
std::string dtype_string(DLDataType dtype);   // "float32", "int64", "uint8x4", ...
bool has_shape(const DLTensor& t, std::initializer_list<int64_t> shape);
// Strides in elements: the tensor's own, or compact row-major ones when it has none.
std::vector<int64_t> element_strides(const DLTensor& t);
// True when the elements are laid out compact row-major (whatever `strides` says).
bool is_compact(const DLTensor& t);

// Why `t` cannot be used as a CPU tensor of `dtype` and rank `ndim` (any rank when
// ndim < 0), or "" when it can: null, not on the CPU, wrong dtype or rank, null shape,
// negative sizes, null data with elements.
std::string tensor_problem(const DLTensor* t, DLDataType dtype, int ndim);

// First element's address (data + byte_offset).
template <class T>
T* element_base(const DLTensor& t) {
  return reinterpret_cast<T*>(static_cast<char*>(t.data) + t.byte_offset);
}

// Calls f(index, offset) for every element in row-major order: `index` counts elements
// 0..n-1, `offset` is the element's distance from element_base in elements.
template <class F>
void for_each_offset(const DLTensor& t, F&& f) {
  const int64_t n = element_count(t);
  if (n == 0) return;
  if (t.ndim == 0) {
    f(int64_t{0}, int64_t{0});
    return;
  }
  const std::vector<int64_t> strides = element_strides(t);
  const int last = t.ndim - 1;
  const int64_t inner = t.shape[last], inner_stride = strides[last];
  std::vector<int64_t> index(t.ndim, 0);
  int64_t offset = 0;
  for (int64_t i = 0; i < n; i += inner) {
    for (int64_t j = 0; j < inner; ++j) f(i + j, offset + j * inner_stride);
    // Odometer over the outer dimensions.
    for (int d = last - 1; d >= 0; --d) {
      offset += strides[d];
      if (++index[d] < t.shape[d]) break;
      offset -= strides[d] * t.shape[d];
      index[d] = 0;
    }
  }
}

}  // namespace ph::host
