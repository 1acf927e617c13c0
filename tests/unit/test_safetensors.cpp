// The safetensors reader and writer: round trips, dtype widening, and every kind of
// malformed file (generated on the fly), each rejected with a message that names the
// file, the tensor and the problem.
#include <catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "models/common/error.h"
#include "models/common/mapped_file.h"
#include "models/loader/safetensors.h"
#include "test_support.h"

using Catch::Matchers::Contains;
using ph::DType;
using ph::SafetensorsFile;

namespace {

std::string temp_file(const std::string& dir, const std::string& name) {
  return ph::test::temp_dir("safetensors_" + dir) + "/" + name;
}

// Writes `header` (padded to `pad_to` bytes with spaces) behind its length, then `data`.
// `length` overrides the stored header length (to lie about it).
std::string write_raw(const std::string& path, std::string header, const std::string& data,
                      size_t pad_to = 8, int64_t length = -1) {
  header.append((pad_to - header.size() % pad_to) % pad_to, ' ');
  const uint64_t n = length >= 0 ? static_cast<uint64_t>(length) : header.size();
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(&n), 8);
  out << header << data;
  return path;
}

std::string bytes_of(const void* p, size_t n) {
  return std::string(static_cast<const char*>(p), n);
}

std::string f32_bytes(std::initializer_list<float> values) {
  std::string s;
  for (float v : values) s += bytes_of(&v, 4);
  return s;
}

std::string u16_bytes(std::initializer_list<uint16_t> values) {
  std::string s;
  for (uint16_t v : values) s += bytes_of(&v, 2);
  return s;
}

// A one-tensor header.
std::string entry(const std::string& name, const std::string& dtype, const std::string& shape,
                  const std::string& offsets) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape +
         ",\"data_offsets\":" + offsets + "}";
}

bool same_bits(float a, float b) {
  return std::memcmp(&a, &b, sizeof a) == 0;
}

}  // namespace

TEST_CASE("safetensors: write then read round-trips F32, I64 and metadata", "[safetensors]") {
  const std::string path = temp_file("roundtrip", "t.safetensors");
  const std::vector<float> matrix = {1.5f, -2.0f, 3.25f, 0.0f, -0.0f, 1e-30f};
  const std::vector<int64_t> ids = {7, -1, int64_t{1} << 40, 0, -100};
  const float scalar = 42.0f;
  // A 5-element float tensor first by name: with naive ordering it would leave the I64
  // tensor after it misaligned.
  const std::vector<float> odd = {1, 2, 3, 4, 5};
  ph::write_safetensors(
      path,
      {ph::f32_tensor("a.odd", {5}, odd.data()), ph::f32_tensor("b.matrix", {2, 3}, matrix.data()),
       ph::i64_tensor("c.ids", {5}, ids.data()), ph::f32_tensor("d.scalar", {}, &scalar),
       ph::f32_tensor("e.empty", {0, 4}, nullptr)},
      {{"format", "pt"}, {"config", "{\"x\": 1}"}});

  // Rewriting over an existing file works and leaves no temporary file behind.
  ph::write_safetensors(
      path,
      {ph::f32_tensor("a.odd", {5}, odd.data()), ph::f32_tensor("b.matrix", {2, 3}, matrix.data()),
       ph::i64_tensor("c.ids", {5}, ids.data()), ph::f32_tensor("d.scalar", {}, &scalar),
       ph::f32_tensor("e.empty", {0, 4}, nullptr)},
      {{"format", "pt"}, {"config", "{\"x\": 1}"}});
  size_t files = 0;
  for (const auto& e :
       std::filesystem::directory_iterator(std::filesystem::path(path).parent_path())) {
    (void)e;
    ++files;
  }
  CHECK(files == 1);

  const SafetensorsFile file(path);
  CHECK(file.metadata() ==
        std::map<std::string, std::string>{{"format", "pt"}, {"config", "{\"x\": 1}"}});
  REQUIRE(file.tensors().size() == 5);
  CHECK(file.tensors()[0].name == "a.odd");
  CHECK(file.tensors()[4].name == "e.empty");
  for (const auto& t : file.tensors()) {
    INFO(t.name);
    CHECK(t.begin % ph::dtype_size(t.dtype) == 0);
  }

  const ph::FloatTensor m = file.to_float("b.matrix");
  CHECK(m.shape == std::vector<int64_t>{2, 3});
  CHECK(m.numel == 6);
  CHECK_FALSE(m.copied);  // F32, aligned: a view into the mapping
  CHECK(m.storage == file.mapping());
  for (size_t i = 0; i < matrix.size(); ++i) CHECK(same_bits(m.data[i], matrix[i]));

  CHECK(file.info("c.ids").dtype == DType::kI64);
  CHECK(file.to_int64("c.ids") == ids);
  const ph::FloatTensor s = file.to_float("d.scalar");
  CHECK(s.shape.empty());
  REQUIRE(s.numel == 1);
  CHECK(s.data[0] == 42.0f);
  CHECK(file.to_float("e.empty").numel == 0);
  CHECK(file.to_float("a.odd").data[4] == 5.0f);

  CHECK(file.find("nope") == nullptr);
  REQUIRE_THROWS_WITH(file.info("nope"), Contains(path) && Contains("'nope'"));
  REQUIRE_THROWS_WITH(file.to_float("c.ids"),
                      Contains("'c.ids'") && Contains("not a floating-point"));
  REQUIRE_THROWS_WITH(file.to_int64("b.matrix"),
                      Contains("'b.matrix'") && Contains("not an integer"));
}

TEST_CASE("safetensors: the writer rejects what it cannot write", "[safetensors]") {
  const std::string path = temp_file("writer_errors", "t.safetensors");
  const float v[2] = {1, 2};
  REQUIRE_THROWS_WITH(
      ph::write_safetensors(path, {ph::f32_tensor("x", {2}, v), ph::f32_tensor("x", {2}, v)}),
      Contains("'x'") && Contains("twice"));
  REQUIRE_THROWS_WITH(ph::write_safetensors(path, {ph::f32_tensor("x", {-2}, v)}),
                      Contains("'x'") && Contains("negative"));
  REQUIRE_THROWS_WITH(ph::write_safetensors(path, {{"x", {2}, DType::kF16, v}}),
                      Contains("'x'") && Contains("F16"));
  REQUIRE_THROWS_WITH(ph::write_safetensors(path, {ph::f32_tensor("x", {2}, nullptr)}),
                      Contains("'x'") && Contains("no data"));
  const std::string missing_dir = path + ".d/t.safetensors";
  REQUIRE_THROWS_WITH(ph::write_safetensors(missing_dir, {ph::f32_tensor("x", {2}, v)}),
                      Contains(missing_dir));
  CHECK_FALSE(std::filesystem::exists(path));  // nothing half-written
}

TEST_CASE("safetensors: reads the reference fixtures (F64 narrowed, I64)", "[safetensors]") {
  const std::string path =
      ph::test::fixtures_dir() + "/cases/gpt2-tiny__multitask_prompt_tuning.safetensors";
  const SafetensorsFile file(path);
  CHECK(file.metadata().at("method") == "multitask_prompt_tuning");
  const auto ids = file.to_int64("input.input_ids");
  CHECK(ids.size() == 21);
  CHECK(file.info("input.input_ids").shape == std::vector<int64_t>{3, 7});
  const ph::FloatTensor loss = file.to_float("expect.loss");
  CHECK(loss.copied);
  REQUIRE(loss.numel == 1);
  CHECK(std::isfinite(loss.data[0]));
  CHECK(loss.data[0] > 0.0f);
}

TEST_CASE("safetensors: F16 and BF16 are widened exactly", "[safetensors]") {
  const std::string path = temp_file("widen", "t.safetensors");
  const std::string f16 = u16_bytes(
      {0x3C00, 0xC000, 0x3555, 0x7BFF, 0x0001, 0x03FF, 0x0400, 0x8000, 0x7C00, 0xFC00, 0x7E00});
  const std::string bf16 = u16_bytes({0x3F80, 0xC0A0, 0x3EAB, 0x7F80, 0xFF80, 0x0001, 0x8000});
  write_raw(
      path,
      "{" + entry("bf", "BF16", "[7]", "[0,14]") + "," + entry("h", "F16", "[11]", "[14,36]") + "}",
      bf16 + f16);
  const SafetensorsFile file(path);

  const ph::FloatTensor h = file.to_float("h");
  REQUIRE(h.numel == 11);
  CHECK(h.copied);
  CHECK(h.data[0] == 1.0f);
  CHECK(h.data[1] == -2.0f);
  CHECK(h.data[2] == 0.333251953125f);           // 0x3555 = 1365/4096
  CHECK(h.data[3] == 65504.0f);                  // largest half
  CHECK(h.data[4] == std::ldexp(1.0f, -24));     // smallest subnormal
  CHECK(h.data[5] == std::ldexp(1023.0f, -24));  // largest subnormal
  CHECK(h.data[6] == std::ldexp(1.0f, -14));     // smallest normal
  CHECK(h.data[7] == 0.0f);
  CHECK(std::signbit(h.data[7]));
  CHECK(h.data[8] == std::numeric_limits<float>::infinity());
  CHECK(h.data[9] == -std::numeric_limits<float>::infinity());
  CHECK(std::isnan(h.data[10]));

  const ph::FloatTensor b = file.to_float("bf");
  REQUIRE(b.numel == 7);
  CHECK(b.data[0] == 1.0f);
  CHECK(b.data[1] == -5.0f);
  CHECK(b.data[2] == 0.333984375f);  // 0x3EAB = 0x3EAB0000 as float
  CHECK(b.data[3] == std::numeric_limits<float>::infinity());
  CHECK(b.data[4] == -std::numeric_limits<float>::infinity());
  CHECK(b.data[5] == std::ldexp(1.0f, -133));  // a float subnormal
  CHECK(std::signbit(b.data[6]));
}

TEST_CASE("safetensors: F32 at an unaligned address is copied, not viewed", "[safetensors]") {
  // Header padded to 8k + 2 bytes: the data section starts at an address ≡ 2 (mod 4).
  const std::string path = temp_file("unaligned", "t.safetensors");
  std::string header = "{" + entry("w", "F32", "[3]", "[0,12]") + "}";
  header.append((8 - header.size() % 8) % 8 + 2, ' ');
  write_raw(path, header, f32_bytes({1.0f, -2.5f, 3.0f}), 1);
  const SafetensorsFile file(path);
  const ph::FloatTensor w = file.to_float("w");
  CHECK(w.copied);
  CHECK(reinterpret_cast<uintptr_t>(w.data) % alignof(float) == 0);
  CHECK(w.data[0] == 1.0f);
  CHECK(w.data[1] == -2.5f);
  CHECK(w.data[2] == 3.0f);
}

// The format does not align tensors: Python's safetensors packs them back to back, so an
// I64 tensor after an odd number of F32 values begins at an offset that is not a multiple
// of 8 (PEFT's family fixtures, extra/*__cartridge_distill). Such a file is valid.
TEST_CASE("safetensors: a tensor at an offset not a multiple of its element size reads",
          "[safetensors]") {
  const std::string path = temp_file("offset", "t.safetensors");
  const int64_t ids[2] = {7, -100};
  write_raw(path,
            "{" + entry("a", "F32", "[1]", "[0,4]") + "," + entry("b", "I64", "[2]", "[4,20]") +
                "," + entry("c", "F32", "[1]", "[22,26]") + "}",
            f32_bytes({1.5f}) + bytes_of(ids, sizeof ids) + "xx" + f32_bytes({-3.0f}));
  const SafetensorsFile file(path);
  CHECK(file.to_int64("b") == std::vector<int64_t>{7, -100});
  CHECK(file.to_float("c").data[0] == -3.0f);
}

TEST_CASE("safetensors: malformed files are rejected with a precise message", "[safetensors]") {
  const std::string dir = "bad";
  const std::string four = f32_bytes({1, 2, 3, 4});

  SECTION("empty and truncated files") {
    const std::string empty = temp_file(dir, "empty.safetensors");
    std::ofstream(empty).close();
    REQUIRE_THROWS_WITH(SafetensorsFile(empty), Contains(empty) && Contains("truncated"));
    const std::string short_file = temp_file(dir, "short.safetensors");
    std::ofstream(short_file) << "abc";
    REQUIRE_THROWS_WITH(SafetensorsFile(short_file), Contains(short_file) && Contains("truncated"));
  }
  SECTION("missing file") {
    const std::string missing = temp_file(dir, "missing.safetensors");
    REQUIRE_THROWS_WITH(SafetensorsFile(missing), Contains(missing) && Contains("cannot open"));
  }
  SECTION("header length past the end of the file") {
    const std::string p = temp_file(dir, "long_header.safetensors");
    write_raw(p, "{}", "", 8, 4096);
    REQUIRE_THROWS_WITH(SafetensorsFile(p),
                        Contains(p) && Contains("header length 4096 runs past the end"));
  }
  SECTION("absurd header length") {
    const std::string p = temp_file(dir, "huge_header.safetensors");
    write_raw(p, "{}", "", 8, int64_t{1} << 40);
    REQUIRE_THROWS_WITH(SafetensorsFile(p), Contains(p) && Contains("100 MB"));
  }
  SECTION("header that is not JSON, or not an object") {
    const std::string p = temp_file(dir, "bad_json.safetensors");
    write_raw(p, "{\"w\": {\"dtype\": ", "");
    REQUIRE_THROWS_WITH(SafetensorsFile(p), Contains(p) && Contains("not valid JSON"));
    write_raw(p, "[1, 2]", "");
    REQUIRE_THROWS_WITH(SafetensorsFile(p), Contains(p) && Contains("must be a JSON object"));
  }
  SECTION("offsets past the end of the data") {
    const std::string p = temp_file(dir, "past_end.safetensors");
    write_raw(p, "{" + entry("w", "F32", "[4]", "[4,20]") + "}", four);
    REQUIRE_THROWS_WITH(SafetensorsFile(p), Contains(p) && Contains("tensor 'w'") &&
                                                Contains("run past the end of the data"));
  }
  SECTION("end before begin") {
    const std::string p = temp_file(dir, "reversed.safetensors");
    write_raw(p, "{" + entry("w", "F32", "[0]", "[8,4]") + "}", four);
    REQUIRE_THROWS_WITH(SafetensorsFile(p),
                        Contains(p) && Contains("tensor 'w'") && Contains("end is before begin"));
  }
  SECTION("byte size not matching shape x dtype") {
    const std::string p = temp_file(dir, "size.safetensors");
    write_raw(p, "{" + entry("w", "F32", "[2,2]", "[0,12]") + "}", four);
    REQUIRE_THROWS_WITH(SafetensorsFile(p),
                        Contains(p) && Contains("tensor 'w'") &&
                            Contains("hold 12 bytes but shape [2, 2] of F32 needs 16"));
  }
  SECTION("overlapping tensors") {
    const std::string p = temp_file(dir, "overlap.safetensors");
    write_raw(
        p, "{" + entry("a", "F32", "[2]", "[0,8]") + "," + entry("b", "F32", "[2]", "[4,12]") + "}",
        four);
    REQUIRE_THROWS_WITH(SafetensorsFile(p),
                        Contains(p) && Contains("'a'") && Contains("'b'") && Contains("overlap"));
  }
  SECTION("unknown dtype") {
    const std::string p = temp_file(dir, "dtype.safetensors");
    write_raw(p, "{" + entry("w", "F8_E4M3", "[4]", "[0,4]") + "}", four);
    REQUIRE_THROWS_WITH(SafetensorsFile(p), Contains(p) && Contains("tensor 'w'") &&
                                                Contains("unknown dtype 'F8_E4M3'"));
  }
  SECTION("negative, fractional and overflowing shapes") {
    const std::string p = temp_file(dir, "shape.safetensors");
    write_raw(p, "{" + entry("w", "F32", "[-1,4]", "[0,16]") + "}", four);
    REQUIRE_THROWS_WITH(SafetensorsFile(p), Contains("tensor 'w'") && Contains("negative"));
    write_raw(p, "{" + entry("w", "F32", "[1.5]", "[0,16]") + "}", four);
    REQUIRE_THROWS_WITH(SafetensorsFile(p),
                        Contains("tensor 'w'") && Contains("non-negative integers"));
    write_raw(p, "{" + entry("w", "F32", "[4294967296,4294967296]", "[0,16]") + "}", four);
    REQUIRE_THROWS_WITH(SafetensorsFile(p), Contains("tensor 'w'") && Contains("overflows"));
  }
  SECTION("missing or ill-typed fields") {
    const std::string p = temp_file(dir, "fields.safetensors");
    write_raw(p, "{\"w\":{\"shape\":[4],\"data_offsets\":[0,16]}}", four);
    REQUIRE_THROWS_WITH(SafetensorsFile(p), Contains("tensor 'w'") && Contains("'dtype'"));
    write_raw(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0]}}", four);
    REQUIRE_THROWS_WITH(SafetensorsFile(p), Contains("tensor 'w'") && Contains("data_offsets"));
    write_raw(p, "{\"w\":[1]}", four);
    REQUIRE_THROWS_WITH(SafetensorsFile(p), Contains("tensor 'w'") && Contains("object"));
  }
  SECTION("duplicate tensor names") {
    const std::string p = temp_file(dir, "duplicate.safetensors");
    write_raw(
        p, "{" + entry("w", "F32", "[2]", "[0,8]") + "," + entry("w", "F32", "[2]", "[8,16]") + "}",
        four);
    REQUIRE_THROWS_WITH(SafetensorsFile(p), Contains("tensor 'w'") && Contains("twice"));
  }
  SECTION("metadata that is not string to string") {
    const std::string p = temp_file(dir, "metadata.safetensors");
    write_raw(p, "{\"__metadata__\":{\"n\":3}," + entry("w", "F32", "[4]", "[0,16]") + "}", four);
    REQUIRE_THROWS_WITH(SafetensorsFile(p),
                        Contains(p) && Contains("__metadata__ entry 'n' must be a string"));
  }
}

TEST_CASE("mapped file: sizes, contents and errors", "[safetensors]") {
  const std::string p = temp_file("mapped", "data.bin");
  std::ofstream(p, std::ios::binary) << "hello";
  const ph::MappedFile file(p);
  REQUIRE(file.size() == 5);
  CHECK(std::string(reinterpret_cast<const char*>(file.data()), 5) == "hello");
  CHECK(file.path() == p);

  const std::string empty = temp_file("mapped_empty", "empty.bin");
  std::ofstream(empty).close();
  const ph::MappedFile e(empty);
  CHECK(e.size() == 0);
  CHECK(e.data() == nullptr);

  const std::string missing = p + ".missing";
  REQUIRE_THROWS_WITH(ph::MappedFile(missing), Contains(missing) && Contains("cannot open"));
  const std::string folder = ph::test::temp_dir("mapped_folder");
  REQUIRE_THROWS_WITH(ph::MappedFile(folder), Contains(folder));
}
