// Zero-copy xtensor views of ABI tensors, and owned tensors that lend DLTensor views.
// Header-only; part of the SDK, not of the ABI.
#pragma once

#include <dlpack/dlpack.h>

#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include <xtensor/xadapt.hpp>
#include <xtensor/xarray.hpp>
#include <xtensor/xnoalias.hpp>

namespace ph::sdk {

inline bool is_float32(const DLTensor& t) {
  return t.dtype.code == kDLFloat && t.dtype.bits == 32 && t.dtype.lanes == 1;
}
inline bool is_int64(const DLTensor& t) {
  return t.dtype.code == kDLInt && t.dtype.bits == 64 && t.dtype.lanes == 1;
}

inline size_t element_count(const DLTensor& t) {
  size_t n = 1;
  for (int i = 0; i < t.ndim; ++i) n *= (size_t)t.shape[i];
  return n;
}

inline std::string shape_string(const DLTensor& t) {
  std::string s = "[";
  for (int i = 0; i < t.ndim; ++i) s += (i ? ", " : "") + std::to_string(t.shape[i]);
  return s + "]";
}

// A view of `t` as an xtensor expression of rank N over T (float or int64_t), honouring
// strides and byte_offset. Throws std::invalid_argument when dtype or rank differ.
// Write through it with xt::noalias(view) = expr, which keeps the tensor's strides.
template <class T, size_t N>
auto view(const DLTensor& t) {
  constexpr bool want_float = std::is_same<std::remove_const_t<T>, float>::value;
  if (want_float ? !is_float32(t) : !is_int64(t))
    throw std::invalid_argument(std::string("tensor is not ") + (want_float ? "float32" : "int64"));
  if (t.ndim != (int)N)
    throw std::invalid_argument("tensor has rank " + std::to_string(t.ndim) + ", expected " +
                                std::to_string(N));
  std::array<size_t, N> shape;
  std::array<ptrdiff_t, N> strides;
  ptrdiff_t compact = 1;
  for (int i = (int)N - 1; i >= 0; --i) {
    shape[i] = (size_t)t.shape[i];
    strides[i] = t.strides ? (ptrdiff_t)t.strides[i] : compact;
    compact *= (ptrdiff_t)t.shape[i];
  }
  T* data = reinterpret_cast<T*>(static_cast<char*>(t.data) + t.byte_offset);
  return xt::adapt(data, element_count(t), xt::no_ownership(), shape, strides);
}

// A float32 tensor owned by a plugin (or the host) that lends a DLTensor view of itself.
// The view stays valid while the Tensor lives and is not resized.
class Tensor {
 public:
  Tensor() { refresh(); }
  explicit Tensor(const std::vector<size_t>& shape) : values_(xt::zeros<float>(shape)) {
    refresh();
  }
  Tensor(const Tensor& other) : values_(other.values_) { refresh(); }
  Tensor& operator=(const Tensor& other) {
    values_ = other.values_;
    refresh();
    return *this;
  }

  // A non-owning view of the values with the tensor's shape. Writing through it
  // (view = expr, view += expr, view(i, j) = x) never moves the memory, so the DLTensor
  // views the host holds stay valid. (The xarray itself is private for that reason: a
  // plain assignment to an xarray may reallocate it.)
  auto values() {
    return xt::adapt(values_.data(), values_.size(), xt::no_ownership(), shape_sizes());
  }
  auto values() const {
    return xt::adapt(static_cast<const float*>(values_.data()), values_.size(), xt::no_ownership(),
                     shape_sizes());
  }
  std::vector<size_t> shape_sizes() const {
    return std::vector<size_t>(values_.shape().begin(), values_.shape().end());
  }
  float* data() { return values_.data(); }
  const float* data() const { return values_.data(); }
  size_t size() const { return values_.size(); }
  DLTensor* dl() { return &dl_; }
  const DLTensor* dl() const { return &dl_; }

  void resize(const std::vector<size_t>& shape) {
    values_ = xt::zeros<float>(shape);
    refresh();
  }

 private:
  void refresh() {
    shape_.assign(values_.shape().begin(), values_.shape().end());
    dl_ = DLTensor{};
    dl_.data = values_.data();
    dl_.device = {kDLCPU, 0};
    dl_.ndim = (int)shape_.size();
    dl_.dtype = {kDLFloat, 32, 1};
    dl_.shape = shape_.data();
    dl_.strides = nullptr;  // compact row-major
    dl_.byte_offset = 0;
  }

  xt::xarray<float> values_;
  std::vector<int64_t> shape_;
  DLTensor dl_;
};

// A DLTensor describing caller-owned compact row-major memory (the shape is copied).
template <class T>
class BorrowedTensor {
 public:
  BorrowedTensor(T* data, std::vector<int64_t> shape) : shape_(std::move(shape)) {
    dl_ = DLTensor{};
    dl_.data = const_cast<std::remove_const_t<T>*>(data);
    dl_.device = {kDLCPU, 0};
    dl_.ndim = (int)shape_.size();
    if (std::is_same<std::remove_const_t<T>, float>::value)
      dl_.dtype = {kDLFloat, 32, 1};
    else
      dl_.dtype = {kDLInt, 64, 1};
    dl_.shape = shape_.data();
  }
  BorrowedTensor(const BorrowedTensor&) = delete;
  BorrowedTensor& operator=(const BorrowedTensor&) = delete;
  DLTensor* dl() { return &dl_; }
  const DLTensor* dl() const { return &dl_; }

 private:
  std::vector<int64_t> shape_;
  DLTensor dl_;
};

}  // namespace ph::sdk
