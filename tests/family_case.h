// The fixtures of PEFT's CPT, ADAPTION_PROMPT and CARTRIDGE (tests/fixtures/family, a copy
// of shared/fixtures-family; its README says how PEFT computes each method) and, when
// set, the folder $PROMPTHOST_FIXTURES_FAMILY of the same format: every case file of a
// method, with the root it came from (its models/<arch> is the base model).
#pragma once

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <catch.hpp>
#include <nlohmann/json.hpp>

#include "models/loader/safetensors.h"
#include "test_support.h"

namespace ph::test {

struct FamilyCaseFile {
  std::filesystem::path root;  // the fixture folder (models/, adapters/, cases/, extra/)
  std::filesystem::path file;  // cases/<arch>__<case>.safetensors or extra/...
  std::string arch, method, case_name, kind;
  nlohmann::json config;  // the adapter_config.json PEFT writes (metadata "config")

  std::filesystem::path model_dir() const { return root / "models" / arch; }
  std::filesystem::path adapter_dir() const { return root / "adapters" / (arch + "__" + case_name); }
};

// ‖got − want‖₂ / ‖want‖₂ of two tensors of the same size (want is the reference).
inline double rel(const std::vector<float>& got, const std::vector<float>& want) {
  REQUIRE(got.size() == want.size());
  return relative_l2(got.data(), want.data(), want.size());
}

inline std::vector<std::filesystem::path> family_fixture_roots() {
  std::vector<std::filesystem::path> roots = {source_path("tests/fixtures/family")};
  if (const char* env = std::getenv("PROMPTHOST_FIXTURES_FAMILY"); env && *env) roots.push_back(env);
  return roots;
}

// Every case of `method` ("cpt", "adaption_prompt", "cartridge") in every root, of any
// kind ("forward", "init_from_text", "distill_loss") or of `kind` when given. A root
// without cases/ fails the test (a wrong $PROMPTHOST_FIXTURES_FAMILY must not pass
// silently).
inline std::vector<FamilyCaseFile> family_cases(const std::string& method,
                                                const std::string& kind = "") {
  std::vector<FamilyCaseFile> out;
  for (const auto& root : family_fixture_roots()) {
    INFO("fixture folder " << root);
    REQUIRE(std::filesystem::is_directory(root / "cases"));
    for (const char* sub : {"cases", "extra"}) {
      if (!std::filesystem::is_directory(root / sub)) continue;
      // README §2: cases/ holds the forward cases, extra/ the others (and its distill files
      // have tensors our loader refuses as misaligned), so a forward listing skips extra/.
      if (kind == "forward" && std::string(sub) == "extra") continue;
      for (const auto& e : std::filesystem::directory_iterator(root / sub)) {
        if (e.path().extension() != ".safetensors") continue;
        const SafetensorsFile f(e.path().string());
        const auto& meta = f.metadata();
        FamilyCaseFile c{root, e.path(), meta.at("arch"), meta.at("method"), meta.at("case"),
                         meta.at("kind"), nlohmann::json::parse(meta.at("config"))};
        if (c.method == method && (kind.empty() || c.kind == kind)) out.push_back(c);
      }
    }
  }
  std::sort(out.begin(), out.end(),
            [](const FamilyCaseFile& a, const FamilyCaseFile& b) { return a.file < b.file; });
  return out;
}

}  // namespace ph::test
