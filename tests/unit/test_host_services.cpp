// The services every plugin gets from the host: statuses, the service lookup, and the
// counter-based random generator (ph.host.random/1) with strided outputs.
#include <catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <set>
#include <vector>

#include "host/plugin/dl_tensor.h"
#include "host/plugin/random_service.h"
#include "host/plugin/status.h"
#include "host/plugin/tensor_files_service.h"
#include "models/common/error.h"
#include "models/loader/safetensors.h"
#include "test_support.h"

using namespace ph::host;

namespace {

// A DLTensor over caller memory with optional strides (elements) and byte offset.
struct TestTensor {
  TestTensor(void* data, std::vector<int64_t> shape_, std::vector<int64_t> strides_ = {},
             DLDataType dtype = kFloat32, uint64_t byte_offset = 0)
      : shape(std::move(shape_)), strides(std::move(strides_)) {
    dl.data = data;
    dl.device = {kDLCPU, 0};
    dl.ndim = (int)shape.size();
    dl.dtype = dtype;
    dl.shape = shape.data();
    dl.strides = strides.empty() ? nullptr : strides.data();
    dl.byte_offset = byte_offset;
  }
  std::vector<int64_t> shape, strides;
  DLTensor dl{};
};

const ph_host_random& rng() {
  return *static_cast<const ph_host_random*>(
      base_host()->get_service(base_host(), PH_SERVICE_RANDOM));
}

// Takes ownership of a status and returns its code (PH_OK for NULL).
ph_code code_of(ph_status* s) {
  const ph_code code = status_code(s);
  base_host()->status_release(base_host(), s);
  return code;
}

std::vector<float> normal(uint64_t seed, uint64_t stream, size_t n, float mean = 0, float std = 1) {
  std::vector<float> v(n);
  TestTensor t(v.data(), {(int64_t)n});
  REQUIRE(rng().fill_normal(base_host(), seed, stream, mean, std, &t.dl) == nullptr);
  return v;
}

}  // namespace

TEST_CASE("statuses carry code and message and are released by the receiver") {
  const ph_host* host = base_host();
  REQUIRE(host->struct_size == sizeof(ph_host));
  REQUIRE(host->abi_major == PH_ABI_MAJOR);
  ph_status* s = host->status_new(host, PH_ERR_DATA_LOSS, "truncated state");
  REQUIRE(s != nullptr);
  CHECK(status_code(s) == PH_ERR_DATA_LOSS);
  CHECK(std::string(status_message(s)) == "truncated state");
  host->status_release(host, s);
  host->status_release(host, nullptr);  // accepted

  // PH_OK is not a way to make a "success status": a non-NULL status is an error.
  ph_status* ok = host->status_new(host, PH_OK, "fine?");
  REQUIRE(ok != nullptr);
  CHECK(status_code(ok) == PH_ERR_INTERNAL);
  host->status_release(host, ok);

  CHECK(std::string(status_code_name(PH_ERR_UNSUPPORTED)) == "unsupported");
}

TEST_CASE("check_status throws the context and the message, and passes NULL") {
  REQUIRE_NOTHROW(check_status(nullptr, "plugin x: forward"));
  try {
    check_status(new_status(PH_ERR_INVALID_ARGUMENT, "bad shape"), "plugin x: forward");
    FAIL("no exception");
  } catch (const ph::Error& e) {
    CHECK(std::string(e.what()) == "plugin x: forward: bad shape");
  }
}

TEST_CASE("the base host serves random numbers and tensor files, not the model") {
  const ph_host* host = base_host();
  const void* random = host->get_service(host, PH_SERVICE_RANDOM);
  REQUIRE(random == random_service());
  CHECK(static_cast<const ph_host_random*>(random)->struct_size == sizeof(ph_host_random));
  CHECK(host->get_service(host, PH_SERVICE_TENSOR_FILES) != nullptr);
  CHECK(host->get_service(host, PH_SERVICE_MODEL) == nullptr);  // only a ModelHost has it
  CHECK(host->get_service(host, "ph.host.random/2") == nullptr);
  CHECK(host->get_service(host, nullptr) == nullptr);
}

TEST_CASE("random draws are a fixed function of (seed, stream, counter)") {
  // Pinned values: a change here changes every plugin's initialisation on every machine.
  CHECK(random_bits(0, 0, 0) == random_bits(0, 0, 0));
  CHECK(random_bits(0, 0, 0) != random_bits(0, 0, 1));
  CHECK(random_bits(0, 0, 0) != random_bits(1, 0, 0));
  CHECK(random_bits(0, 0, 0) != random_bits(0, 1, 0));
  CHECK(random_bits(42, 7, 3) == 0xdd933c7d54d0197aull);

  CHECK(normal(5, 0, 64) == normal(5, 0, 64));
  CHECK(normal(5, 0, 64) != normal(6, 0, 64));
  CHECK(normal(5, 0, 64) != normal(5, 1, 64));
  // Element i does not depend on how many elements are drawn.
  const auto small = normal(9, 2, 10), large = normal(9, 2, 1000);
  CHECK(std::equal(small.begin(), small.end(), large.begin()));
}

TEST_CASE("fill_normal has the asked mean and standard deviation") {
  const size_t n = 200000;
  for (auto [mean, std] : {std::pair<float, float>{0, 1}, {3, 0.5f}}) {
    const auto v = normal(123, 0, n, mean, std);
    double sum = 0, sq = 0;
    for (float x : v) sum += x;
    const double m = sum / n;
    for (float x : v) sq += (x - m) * (x - m);
    CHECK(std::fabs(m - mean) < 0.01 * (std + 1));
    CHECK(std::fabs(std::sqrt(sq / n) - std) < 0.01 * std);
    // Tails exist (Box-Muller is not truncated) but stay plausible.
    const float top = *std::max_element(v.begin(), v.end());
    CHECK(top > mean + 3.5f * std);
    CHECK(top < mean + 7 * std);
  }
}

TEST_CASE("fill_uniform and fill_integers stay in range and cover it") {
  std::vector<float> u(50000);
  TestTensor tu(u.data(), {(int64_t)u.size()});
  REQUIRE(rng().fill_uniform(base_host(), 1, 0, -2.0f, 2.0f, &tu.dl) == nullptr);
  double sum = 0;
  for (float x : u) {
    REQUIRE(x >= -2.0f);
    REQUIRE(x < 2.0f);
    sum += x;
  }
  CHECK(std::fabs(sum / u.size()) < 0.05);

  std::vector<int64_t> k(5000);
  TestTensor tk(k.data(), {(int64_t)k.size()}, {}, kInt64);
  REQUIRE(rng().fill_integers(base_host(), 1, 0, 7, &tk.dl) == nullptr);
  std::set<int64_t> seen(k.begin(), k.end());
  CHECK(seen == std::set<int64_t>{0, 1, 2, 3, 4, 5, 6});
}

TEST_CASE("random fills honour strides and byte_offset: same values at the same indices") {
  // Logical [4, 6]; the reference is compact.
  std::vector<float> compact(24);
  TestTensor tc(compact.data(), {4, 6});
  REQUIRE(rng().fill_normal(base_host(), 77, 3, 0, 1, &tc.dl) == nullptr);

  // Column-major storage (strides {1, 4}) after 3 floats of canary (byte_offset 12).
  const float canary = -12345.0f;
  std::vector<float> buffer(3 + 24, canary);
  TestTensor ts(buffer.data(), {4, 6}, {1, 4}, kFloat32, 3 * sizeof(float));
  REQUIRE(rng().fill_normal(base_host(), 77, 3, 0, 1, &ts.dl) == nullptr);
  for (int i = 0; i < 3; ++i) CHECK(buffer[i] == canary);
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 6; ++j) CHECK(buffer[3 + i + 4 * j] == compact[i * 6 + j]);

  // Padded rows (stride 8 for rows of 6): the padding is not written.
  std::vector<float> padded(4 * 8, canary);
  TestTensor tp(padded.data(), {4, 6}, {8, 1});
  REQUIRE(rng().fill_normal(base_host(), 77, 3, 0, 1, &tp.dl) == nullptr);
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 6; ++j) CHECK(padded[i * 8 + j] == compact[i * 6 + j]);
    CHECK(padded[i * 8 + 6] == canary);
    CHECK(padded[i * 8 + 7] == canary);
  }
}

TEST_CASE("random fills reject wrong tensors and arguments, leaving the output untouched") {
  std::vector<float> f(4, 7.0f);
  std::vector<int64_t> k(4, 7);
  TestTensor tf(f.data(), {4});
  TestTensor tk(k.data(), {4}, {}, kInt64);

  ph_status* s = rng().fill_normal(base_host(), 0, 0, 0, 1, &tk.dl);  // int64 for a float fill
  REQUIRE(s != nullptr);
  CHECK(status_code(s) == PH_ERR_INVALID_ARGUMENT);
  CHECK(std::string(status_message(s)).find("int64") != std::string::npos);
  CHECK(std::string(status_message(s)).find("float32") != std::string::npos);
  base_host()->status_release(base_host(), s);
  CHECK(k == std::vector<int64_t>(4, 7));

  CHECK(code_of(rng().fill_uniform(base_host(), 0, 0, 0, 1, &tk.dl)) == PH_ERR_INVALID_ARGUMENT);
  CHECK(code_of(rng().fill_integers(base_host(), 0, 0, 10, &tf.dl)) == PH_ERR_INVALID_ARGUMENT);
  CHECK(code_of(rng().fill_normal(base_host(), 0, 0, 0, -1, &tf.dl)) == PH_ERR_INVALID_ARGUMENT);
  CHECK(code_of(rng().fill_uniform(base_host(), 0, 0, 1, 1, &tf.dl)) == PH_ERR_INVALID_ARGUMENT);
  CHECK(code_of(rng().fill_integers(base_host(), 0, 0, 0, &tk.dl)) == PH_ERR_INVALID_ARGUMENT);
  CHECK(code_of(rng().fill_normal(base_host(), 0, 0, 0, 1, nullptr)) == PH_ERR_INVALID_ARGUMENT);
  TestTensor gpu(f.data(), {4});
  gpu.dl.device.device_type = kDLCUDA;
  CHECK(code_of(rng().fill_normal(base_host(), 0, 0, 0, 1, &gpu.dl)) == PH_ERR_INVALID_ARGUMENT);
  CHECK(f == std::vector<float>(4, 7.0f));
  CHECK(k == std::vector<int64_t>(4, 7));

  // A zero-element tensor is fine, even without data.
  TestTensor empty(nullptr, {0, 3});
  CHECK(rng().fill_normal(base_host(), 0, 0, 0, 1, &empty.dl) == nullptr);
}

TEST_CASE("for_each_offset walks row-major indices over any strides") {
  std::vector<int64_t> offsets;
  TestTensor t(nullptr, {2, 3}, {1, 2});  // column-major
  for_each_offset(t.dl, [&](int64_t i, int64_t offset) {
    CHECK(i == (int64_t)offsets.size());
    offsets.push_back(offset);
  });
  CHECK(offsets == std::vector<int64_t>{0, 2, 4, 1, 3, 5});
  CHECK_FALSE(is_compact(t.dl));
  TestTensor explicit_compact(nullptr, {2, 3}, {3, 1});
  CHECK(is_compact(explicit_compact.dl));
  TestTensor scalar(nullptr, {});
  int calls = 0;
  for_each_offset(scalar.dl, [&](int64_t, int64_t) { ++calls; });
  CHECK(calls == 1);
}

TEST_CASE("tensor-files reads tensors of safetensors files and adapter folders, naming both") {
  const ph_host* host = base_host();
  const auto* files =
      static_cast<const ph_host_tensor_files*>(host->get_service(host, PH_SERVICE_TENSOR_FILES));
  REQUIRE(files != nullptr);
  REQUIRE(files == tensor_files_service());
  CHECK(files->struct_size == sizeof(ph_host_tensor_files));
  CHECK(host->get_service(host, "ph.host.tensor-files/2") == nullptr);

  const std::string dir = ph::test::temp_dir("tensor_files");
  const std::string file = dir + "/adapter_model.safetensors";
  std::vector<float> a(2 * 3 * 4);
  for (size_t i = 0; i < a.size(); ++i) a[i] = 0.5f * (float)i - 3.0f;
  const std::vector<int64_t> ids = {7, 8};
  ph::write_safetensors(
      file, {ph::f32_tensor("a", {2, 3, 4}, a.data()), ph::i64_tensor("ids", {2}, ids.data())});

  // shape, from the file and from its folder
  for (const std::string& path : {file, dir}) {
    INFO("path " << path);
    int32_t ndim = -1;
    int64_t shape[8] = {0};
    REQUIRE(code_of(files->tensor_shape(host, path.c_str(), "a", &ndim, shape)) == PH_OK);
    CHECK(ndim == 3);
    CHECK(std::vector<int64_t>(shape, shape + 3) == std::vector<int64_t>{2, 3, 4});
    std::vector<float> out(a.size(), -1.0f);
    TestTensor t(out.data(), {2, 3, 4});
    REQUIRE(code_of(files->read_tensor(host, path.c_str(), "a", &t.dl)) == PH_OK);
    CHECK(out == a);
  }

  // a strided, offset output gets the same values at the same indices
  std::vector<float> big(2 * 3 * 8 + 1, 99.0f);
  TestTensor strided(big.data(), {2, 3, 4}, {24, 8, 2}, kFloat32, sizeof(float));
  REQUIRE(code_of(files->read_tensor(host, file.c_str(), "a", &strided.dl)) == PH_OK);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 4; ++k) CHECK(big[1 + i * 24 + j * 8 + k * 2] == a[(i * 3 + j) * 4 + k]);
  CHECK(big[0] == 99.0f);
  CHECK(big[2] == 99.0f);

  // errors name the file and the tensor, and leave the outputs untouched
  auto error = [&](ph_status* s, ph_code want, const std::vector<std::string>& parts) {
    REQUIRE(s != nullptr);
    CHECK(status_code(s) == want);
    const std::string message = status_message(s);
    INFO("message: " << message);
    for (const auto& p : parts) CHECK(message.find(p) != std::string::npos);
    host->status_release(host, s);
  };
  std::vector<float> out(a.size(), -1.0f);
  TestTensor t(out.data(), {2, 3, 4});
  error(files->read_tensor(host, file.c_str(), "b", &t.dl), PH_ERR_INVALID_ARGUMENT,
        {"ph.host.tensor-files/1", file, "'b'", "a, ids"});
  error(files->read_tensor(host, (dir + "/none.safetensors").c_str(), "a", &t.dl), PH_ERR_IO,
        {"none.safetensors"});
  const std::string empty_dir = ph::test::temp_dir("tensor_files_empty");
  error(files->read_tensor(host, empty_dir.c_str(), "a", &t.dl), PH_ERR_IO,
        {empty_dir, "adapter_model.safetensors"});
  TestTensor wrong(out.data(), {3, 2, 4});
  error(files->read_tensor(host, file.c_str(), "a", &wrong.dl), PH_ERR_INVALID_ARGUMENT,
        {file, "'a'", "[2, 3, 4]", "[3, 2, 4]"});
  TestTensor rank(out.data(), {24});
  error(files->read_tensor(host, file.c_str(), "a", &rank.dl), PH_ERR_INVALID_ARGUMENT,
        {file, "'a'", "rank"});
  error(files->read_tensor(host, file.c_str(), "ids", &t.dl), PH_ERR_INVALID_ARGUMENT,
        {file, "'ids'"});
  std::vector<float> two(2);
  TestTensor two_t(two.data(), {2});
  error(files->read_tensor(host, file.c_str(), "ids", &two_t.dl), PH_ERR_INVALID_ARGUMENT,
        {file, "'ids'", "I64"});
  error(files->read_tensor(host, file.c_str(), "a", nullptr), PH_ERR_INVALID_ARGUMENT, {"'a'"});
  const std::string corrupt = dir + "/corrupt.safetensors";
  const char bad_header[] = "\x10\0\0\0\0\0\0\0{not json}......";
  std::ofstream(corrupt, std::ios::binary).write(bad_header, sizeof(bad_header) - 1);
  error(files->read_tensor(host, corrupt.c_str(), "a", &t.dl), PH_ERR_DATA_LOSS, {corrupt});
  int32_t ndim = -1;
  int64_t shape[8] = {0};
  error(files->tensor_shape(host, corrupt.c_str(), "a", &ndim, shape), PH_ERR_DATA_LOSS, {corrupt});
  error(files->tensor_shape(host, file.c_str(), "zz", &ndim, shape), PH_ERR_INVALID_ARGUMENT,
        {file, "'zz'"});
  error(files->tensor_shape(host, nullptr, "a", &ndim, shape), PH_ERR_INVALID_ARGUMENT, {"path"});
  CHECK(ndim == -1);
  CHECK(std::all_of(out.begin(), out.end(), [](float v) { return v == -1.0f; }));
}
