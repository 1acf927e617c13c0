// Every case file of the family fixtures (tests/fixtures/family and the folder
// $PROMPTHOST_FIXTURES_FAMILY names) is one some parity test reads: a method and kind
// among those the family_parity_* suites ask family_cases() for, its base model present,
// its name <arch>__<case>.safetensors. A case nobody reads would otherwise pass silently.
#include <catch.hpp>

#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "family_case.h"
#include "models/loader/safetensors.h"
#include "test_support.h"

namespace fs = std::filesystem;

namespace {

// The (method, kind) pairs the parity suites read (tests/unit/test_family_parity_*.cpp;
// the fixtures' README.md lists the same).
const std::map<std::string, std::set<std::string>> kReadKinds = {
    {"cpt", {"forward"}},
    {"adaption_prompt", {"forward"}},
    {"cartridge", {"forward", "init_from_text", "distill_loss"}},
};

// Why `file` (in root/cases or root/extra) would not be read, or "" when it would.
std::string unread_reason(const fs::path& root, const fs::path& file) {
  if (file.extension() != ".safetensors") return "not a .safetensors case file";
  std::map<std::string, std::string> meta;
  try {
    meta = ph::SafetensorsFile(file.string()).metadata();
  } catch (const std::exception& e) {
    return std::string("unreadable: ") + e.what();
  }
  for (const char* key : {"arch", "method", "case", "kind", "config"})
    if (!meta.count(key)) return std::string("no metadata \"") + key + "\"";
  const std::string& method = meta.at("method");
  const auto read = kReadKinds.find(method);
  if (read == kReadKinds.end())
    return "method \"" + method +
           "\" is not read by any parity test (cpt, adaption_prompt, cartridge)";
  if (!read->second.count(meta.at("kind")))
    return "kind \"" + meta.at("kind") + "\" of method " + method +
           " is not read by any parity test";
  if (file.filename() != meta.at("arch") + "__" + meta.at("case") + ".safetensors")
    return "its name is not <arch>__<case>.safetensors (arch " + meta.at("arch") + ", case " +
           meta.at("case") + ")";
  if (!fs::is_directory(root / "models" / meta.at("arch")))
    return "its base model models/" + meta.at("arch") + " is missing";
  return "";
}

// "<file>: <reason>" for every case file under root that no parity test reads.
std::vector<std::string> unread_cases(const fs::path& root, int* files) {
  std::vector<std::string> problems;
  for (const char* sub : {"cases", "extra"}) {
    if (!fs::is_directory(root / sub)) continue;
    for (const auto& e : fs::directory_iterator(root / sub)) {
      ++*files;
      const std::string why = unread_reason(root, e.path());
      if (!why.empty()) problems.push_back(e.path().string() + ": " + why);
    }
  }
  return problems;
}

}  // namespace

TEST_CASE("every case of the family fixtures has a method and kind a parity test reads") {
  for (const fs::path& root : ph::test::family_fixture_roots()) {
    INFO("fixture folder " << root);
    REQUIRE(fs::is_directory(root / "cases"));
    int files = 0;
    const std::vector<std::string> problems = unread_cases(root, &files);
    for (const std::string& p : problems) UNSCOPED_INFO(p);
    CHECK(problems.empty());
    CHECK(files > 0);
  }
}

TEST_CASE("a case of an unknown method or kind is named with the reason") {
  const fs::path root = ph::test::temp_dir("family_coverage");
  fs::create_directories(root / "cases");
  fs::create_directories(root / "extra");
  fs::create_directories(root / "models" / "llama-tiny");
  const float x = 1.0f;
  auto write_case = [&](const std::string& sub, const std::string& name, const std::string& method,
                        const std::string& kind) {
    ph::write_safetensors((root / sub / name).string(), {ph::f32_tensor("x", {1}, &x)},
                          {{"arch", "llama-tiny"},
                           {"method", method},
                           {"case", method},
                           {"kind", kind},
                           {"config", "{}"}});
  };
  write_case("cases", "llama-tiny__cpt.safetensors", "cpt", "forward");
  write_case("extra", "llama-tiny__cpt.safetensors", "cpt", "distill_loss");
  write_case("cases", "llama-tiny__lora.safetensors", "lora", "forward");
  write_case("cases", "gpt2-tiny__cartridge.safetensors", "cartridge", "forward");

  int files = 0;
  const std::vector<std::string> problems = unread_cases(root, &files);
  CHECK(files == 4);
  REQUIRE(problems.size() == 3);
  const std::string all = problems[0] + "\n" + problems[1] + "\n" + problems[2];
  INFO(all);
  auto has = [&](const std::string& part) { return all.find(part) != std::string::npos; };
  CHECK(has("kind \"distill_loss\" of method cpt is not read"));
  CHECK(has("method \"lora\" is not read by any parity test"));
  CHECK(has("gpt2-tiny__cartridge.safetensors: its name is not"));
  fs::remove_all(root);
}
