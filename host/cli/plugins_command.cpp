// `prompthost plugins`: what plugins the host finds, and why the others do not load.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include <boost/program_options.hpp>

#include "host/cli/commands.h"
#include "host/plugin/method_options.h"
#include "host/plugin/plugin_discovery.h"

namespace ph::cli {

namespace {

namespace po = boost::program_options;

const char kPrefix[] = "prompthost plugins: ";

struct Settings {
  std::vector<std::string> plugin_path;
  bool options = false;
};

po::options_description describe_options(Settings& s) {
  po::options_description desc("Options");
  // clang-format off
  desc.add_options()
    ("help,h", "show this help and exit")
    ("plugin-path", po::value(&s.plugin_path)->composing(),
     "a folder to search first (repeatable); then $PROMPTHOST_PLUGIN_PATH (colon-separated), "
     "lib/prompthost/plugins beside an installed bin/prompthost, the build's plugins folder and "
     "the install prefix's")
    ("options", po::bool_switch(&s.options), "also list each plugin's options (--set NAME=VALUE)");
  // clang-format on
  return desc;
}

void print_help(const po::options_description& desc) {
  std::cout << "Usage: prompthost plugins [--plugin-path DIR ...] [--options]\n\n"
               "Lists the method plugins found on the plugin search path: name (what --plugin\n"
               "takes), PEFT type, plugin ABI version, file and description. Files that fail to\n"
               "load are reported on stderr with the reason.\n\n"
            << desc
            << "\nExamples:\n"
               "  prompthost plugins\n"
               "  prompthost plugins --plugin-path ~/my-plugins --options\n";
}

// `text` wrapped at `width` columns, every line indented by `indent` spaces.
std::string wrap(const std::string& text, size_t indent, size_t width) {
  std::string out, line;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find(' ', start);
    if (end == std::string::npos) end = text.size();
    const std::string word = text.substr(start, end - start);
    if (!line.empty() && indent + line.size() + 1 + word.size() > width) {
      out += std::string(indent, ' ') + line + "\n";
      line.clear();
    }
    if (!word.empty()) line += (line.empty() ? "" : " ") + word;
    start = end + 1;
  }
  if (!line.empty()) out += std::string(indent, ' ') + line + "\n";
  return out;
}

int run(const Settings& s) {
  const std::vector<std::string> dirs = host::plugin_search_path(s.plugin_path);
  std::cout << "Plugin folders, in search order:\n";
  for (const std::string& dir : dirs) {
    std::error_code ec;
    std::cout << "  " << dir << (std::filesystem::is_directory(dir, ec) ? "" : "  (missing)")
              << "\n";
  }
  const std::vector<host::PluginListing> listings = host::list_plugins(s.plugin_path);

  struct Row {
    std::string name, peft_type, abi, version, file, description, options;
  };
  std::vector<Row> rows;
  for (const auto& l : listings) {
    if (!l.library) continue;
    const ph_plugin_entry& e = l.library->entry();
    const ph_method_descriptor& d = l.library->descriptor();
    rows.push_back({d.name, d.peft_type,
                    std::to_string(e.abi_major) + "." + std::to_string(e.abi_minor),
                    d.version ? d.version : "-", l.path, d.description ? d.description : "",
                    s.options ? host::describe_options(d) : ""});
  }
  Row header{"NAME", "PEFT TYPE", "ABI", "VERSION", "FILE", "", ""};
  size_t w_name = header.name.size(), w_peft = header.peft_type.size(), w_abi = header.abi.size(),
         w_version = header.version.size();
  for (const Row& r : rows) {
    w_name = std::max(w_name, r.name.size());
    w_peft = std::max(w_peft, r.peft_type.size());
    w_abi = std::max(w_abi, r.abi.size());
    w_version = std::max(w_version, r.version.size());
  }
  auto print_row = [&](const Row& r) {
    std::printf("%-*s  %-*s  %-*s  %-*s  %s\n", (int)w_name, r.name.c_str(), (int)w_peft,
                r.peft_type.c_str(), (int)w_abi, r.abi.c_str(), (int)w_version, r.version.c_str(),
                r.file.c_str());
  };
  std::printf("\n");
  if (rows.empty()) {
    std::printf("No plugins found.\n");
  } else {
    print_row(header);
    for (const Row& r : rows) {
      print_row(r);
      std::fputs(wrap(r.description, 4, 100).c_str(), stdout);
      if (!r.options.empty()) {
        std::printf("    options:\n");
        size_t start = 0;
        while (start < r.options.size()) {
          const size_t end = r.options.find('\n', start);
          std::printf("      %s\n", r.options.substr(start, end - start).c_str());
          start = end == std::string::npos ? r.options.size() : end + 1;
        }
      }
    }
  }
  std::fflush(stdout);
  for (const auto& l : listings)
    if (!l.library) std::fprintf(stderr, "%snot loaded: %s\n", kPrefix, l.error.c_str());
  return kExitOk;
}

}  // namespace

int plugins_command(int argc, char** argv) {
  Settings settings;
  try {
    const po::options_description desc = describe_options(settings);
    po::variables_map vm;
    const po::positional_options_description none;
    po::store(po::command_line_parser(argc, argv).options(desc).positional(none).run(), vm);
    if (vm.count("help")) {
      print_help(desc);
      return kExitOk;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    std::fprintf(stderr, "%s%s\n(prompthost plugins --help lists the options)\n", kPrefix,
                 e.what());
    return kExitUsage;
  }
  try {
    return run(settings);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s%s\n", kPrefix, e.what());
    return kExitFailure;
  }
}

}  // namespace ph::cli
