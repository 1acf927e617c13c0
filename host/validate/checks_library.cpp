// The library as a whole: its binary, the handshake, its descriptor, and unloading.
#include <dlfcn.h>
#include <elf.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <regex>
#include <set>
#include <sstream>

#include <boost/dll/library_info.hpp>

#include "host/plugin/method_options.h"
#include "host/plugin/status.h"
#include "host/plugin/task_types.h"
#include "host/validate/check.h"
#include "host/validate/fixture.h"
#include "models/loader/random_model.h"

namespace ph::validate {
namespace {

// ------------------------------------------------------------------ the dynamic symbol table

struct DynamicSymbol {
  std::string name;
  unsigned bind = 0;  // STB_*
  unsigned type = 0;  // STT_*
};

// The defined, visible (default or protected) global, weak and unique symbols of an ELF64
// little-endian shared object, read from its .dynsym section: what dlsym can find and
// what `nm -D --defined-only` lists. Boost.DLL's library_info reads .symtab instead, which
// `strip` removes, so it cannot tell what a stripped library exports. Throws CheckFailed
// for anything that is not a well-formed ELF64 shared object.
std::vector<DynamicSymbol> exported_symbols(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  require((bool)file, "cannot open " + path);
  const std::vector<char> bytes((std::istreambuf_iterator<char>(file)),
                                std::istreambuf_iterator<char>());
  auto in_file = [&](uint64_t offset, uint64_t size) {
    return offset <= bytes.size() && size <= bytes.size() - offset;
  };
  Elf64_Ehdr eh;
  require(in_file(0, sizeof eh) && std::memcmp(bytes.data(), ELFMAG, SELFMAG) == 0,
          "not an ELF file");
  std::memcpy(&eh, bytes.data(), sizeof eh);
  require(eh.e_ident[EI_CLASS] == ELFCLASS64 && eh.e_ident[EI_DATA] == ELFDATA2LSB,
          "not a 64-bit little-endian ELF file");
  require(eh.e_type == ET_DYN, "not a shared object (ELF type " + std::to_string(eh.e_type) + ")");
  require(eh.e_shentsize == sizeof(Elf64_Shdr) &&
              in_file(eh.e_shoff, (uint64_t)eh.e_shnum * sizeof(Elf64_Shdr)),
          "malformed ELF section headers");
  auto section = [&](size_t i) {
    Elf64_Shdr sh;
    std::memcpy(&sh, bytes.data() + eh.e_shoff + i * sizeof(Elf64_Shdr), sizeof sh);
    return sh;
  };
  for (size_t i = 0; i < eh.e_shnum; ++i) {
    const Elf64_Shdr symtab = section(i);
    if (symtab.sh_type != SHT_DYNSYM) continue;
    require(symtab.sh_link < eh.e_shnum && symtab.sh_entsize == sizeof(Elf64_Sym) &&
                in_file(symtab.sh_offset, symtab.sh_size),
            "malformed .dynsym section");
    const Elf64_Shdr strtab = section(symtab.sh_link);
    require(in_file(strtab.sh_offset, strtab.sh_size), "malformed .dynstr section");
    std::vector<DynamicSymbol> symbols;
    for (size_t k = 1; k < symtab.sh_size / sizeof(Elf64_Sym); ++k) {
      Elf64_Sym sym;
      std::memcpy(&sym, bytes.data() + symtab.sh_offset + k * sizeof sym, sizeof sym);
      const unsigned bind = ELF64_ST_BIND(sym.st_info);
      const unsigned visibility = ELF64_ST_VISIBILITY(sym.st_other);
      if (sym.st_shndx == SHN_UNDEF || bind == STB_LOCAL) continue;
      if (visibility != STV_DEFAULT && visibility != STV_PROTECTED) continue;
      require(sym.st_name < strtab.sh_size, "malformed symbol name offset");
      const char* name = bytes.data() + strtab.sh_offset + sym.st_name;
      const unsigned type = ELF64_ST_TYPE(sym.st_info);  // an int: a narrowing in braces
      symbols.push_back(
          {std::string(name, strnlen(name, strtab.sh_size - sym.st_name)), bind, type});
    }
    return symbols;
  }
  throw CheckFailed("no dynamic symbol table (.dynsym): nothing is exported");
}

std::string join_names(const std::vector<std::string>& names, size_t limit) {
  std::string text;
  for (size_t i = 0; i < names.size() && i < limit; ++i) text += (i ? ", " : "") + names[i];
  if (names.size() > limit) text += ", ... (" + std::to_string(names.size()) + " in all)";
  return text;
}

// ------------------------------------------------------------------ handshake helpers

// A ph_host table as a host of a later minor (or another major) would hand it: the
// process's own functions, a larger struct_size, zeroed fields beyond 1.0.
struct FutureHost {
  ph_host base;
  void* later_fields[16];
};

FutureHost future_host(uint16_t major, uint16_t minor) {
  FutureHost h{};
  h.base = *host::base_host();
  h.base.struct_size = sizeof(FutureHost);
  h.base.abi_major = major;
  h.base.abi_minor = minor;
  return h;
}

// dlopen'ed plugin, closed with the object.
class RawLibrary {
 public:
  explicit RawLibrary(const std::string& path)
      : handle_(dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL)) {
    if (!handle_) throw CheckFailed(std::string("dlopen: ") + dlerror());
  }
  ~RawLibrary() { dlclose(handle_); }
  RawLibrary(const RawLibrary&) = delete;
  RawLibrary& operator=(const RawLibrary&) = delete;
  const ph_plugin_entry& entry() const {
    auto fn = reinterpret_cast<ph_plugin_entry_fn>(dlsym(handle_, PH_PLUGIN_ENTRY_SYMBOL));
    require(fn != nullptr, "no symbol " PH_PLUGIN_ENTRY_SYMBOL);
    const ph_plugin_entry* entry = fn();
    require(entry != nullptr, PH_PLUGIN_ENTRY_SYMBOL "() returned NULL");
    return *entry;
  }

 private:
  void* handle_;
};

std::string version_text(int major, int minor) {
  return std::to_string(major) + "." + std::to_string(minor);
}

// ------------------------------------------------------------------ metadata helpers

const char* type_name(ph_option_type type) {
  switch (type) {
    case PH_OPTION_INT:
      return "int";
    case PH_OPTION_FLOAT:
      return "float";
    case PH_OPTION_BOOL:
      return "bool";
    case PH_OPTION_STRING:
      return "string";
    case PH_OPTION_CHOICE:
      return "choice";
    case PH_OPTION_INT_LIST:
      return "int list";
  }
  return "unknown";
}

// Why `value` does not satisfy the option's declaration, or "" when it does.
std::string declaration_problem(const ph_option& o, const nlohmann::json& value) {
  if (value.is_null()) return o.nullable ? "" : "null but the option is not nullable";
  switch (o.type) {
    case PH_OPTION_INT:
      if (!value.is_number_integer()) return "not an integer";
      if (value.get<double>() < o.min_value || value.get<double>() > o.max_value)
        return "outside [" + sci(o.min_value) + ", " + sci(o.max_value) + "]";
      return "";
    case PH_OPTION_FLOAT:
      if (!value.is_number()) return "not a number";
      if (value.get<double>() < o.min_value || value.get<double>() > o.max_value)
        return "outside [" + sci(o.min_value) + ", " + sci(o.max_value) + "]";
      return "";
    case PH_OPTION_BOOL:
      return value.is_boolean() ? "" : "not a boolean";
    case PH_OPTION_STRING:
      return value.is_string() ? "" : "not a string";
    case PH_OPTION_CHOICE: {
      if (!value.is_string()) return "not a string";
      const auto list = host::choices_of(o);
      if (std::find(list.begin(), list.end(), value.get<std::string>()) == list.end())
        return "not one of the choices";
      return "";
    }
    case PH_OPTION_INT_LIST:
      if (!value.is_array()) return "not a list";
      for (const auto& e : value) {
        if (!e.is_number_integer()) return "an element that is not an integer";
        if (e.get<double>() < o.min_value || e.get<double>() > o.max_value)
          return "an element outside [" + sci(o.min_value) + ", " + sci(o.max_value) + "]";
      }
      return "";
  }
  return "unknown option type " + std::to_string(o.type);
}

bool nonblank(const char* text) {
  if (!text) return false;
  for (const char* p = text; *p; ++p)
    if (!std::isspace((unsigned char)*p)) return true;
  return false;
}

// ------------------------------------------------------------------ /proc/self/maps

// Lines of /proc/self/maps that map `path` (by canonical path or inode).
std::vector<std::string> mappings_of(const std::string& path) {
  std::error_code ec;
  const std::string canonical = std::filesystem::canonical(path, ec).string();
  struct stat st {};
  const bool have_inode = stat(path.c_str(), &st) == 0;
  std::ifstream maps("/proc/self/maps");
  std::vector<std::string> found;
  for (std::string line; std::getline(maps, line);) {
    std::istringstream fields(line);
    std::string range, perms, offset, device, mapped_path;
    unsigned long long inode = 0;
    fields >> range >> perms >> offset >> device >> inode;
    std::getline(fields >> std::ws, mapped_path);
    if ((!canonical.empty() && mapped_path == canonical) ||
        (have_inode && inode != 0 && inode == (unsigned long long)st.st_ino))
      found.push_back(line);
  }
  return found;
}

size_t open_fd_count() {
  std::error_code ec;
  size_t n = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
    ++n;
  return n;
}

}  // namespace

// ------------------------------------------------------------------ the checks

void check_symbols(const Context& ctx, Report& report) {
  const auto symbols = exported_symbols(ctx.plugin);  // first: its errors say more
  try {
    boost::dll::library_info info(ctx.plugin);  // the platform's format, as Boost.DLL reads it
    (void)info.sections();
  } catch (const std::exception& e) {
    throw CheckFailed(std::string("not a shared library of this platform (Boost.DLL "
                                  "library_info: ") +
                      e.what() + ")");
  }
  bool entry = false;
  std::vector<std::string> others, unique;
  for (const auto& s : symbols) {
    if (s.name == PH_PLUGIN_ENTRY_SYMBOL) {
      require(s.type == STT_FUNC, PH_PLUGIN_ENTRY_SYMBOL " is not a function");
      entry = true;
    } else {
      others.push_back(s.name);
    }
    if (s.bind == STB_GNU_UNIQUE) unique.push_back(s.name);
  }
  require(entry, "does not export " PH_PLUGIN_ENTRY_SYMBOL " (exports: " +
                     (others.empty() ? std::string("nothing") : join_names(others, 8)) + ")");
  // A unique symbol makes the loader mark the library NODELETE: it can never be unloaded.
  require(unique.empty(), "exports STB_GNU_UNIQUE symbols, which keep it from ever unloading: " +
                              join_names(unique, 3) +
                              " (link with the plugin version script: prompthost_add_plugin)");
  if (!others.empty())
    report.warn("exports " + std::to_string(others.size()) +
                " symbols besides the entry (hide them with a version script, as "
                "prompthost_add_plugin does): " +
                join_names(others, 5));
}

void check_handshake(const Context& ctx, Report& report) {
  {  // what the host does
    const auto start = std::chrono::steady_clock::now();
    const auto library = host::PluginLibrary::load(ctx.plugin);
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    const ph_plugin_entry& e = library->entry();
    report.note("entry: ABI " + version_text(e.abi_major, e.abi_minor) + ", table " +
                std::to_string(e.struct_size) + " bytes; loaded and initialised in " + sci(ms) +
                " ms");
    if (ms > 100) report.warn("loading took more than 100 ms");
  }
  // init with hosts of a later minor (must work) and another major (must refuse).
  RawLibrary raw(ctx.plugin);
  const ph_plugin_entry& entry = raw.entry();
  const ph_host* base = host::base_host();

  FutureHost newer = future_host(PH_ABI_MAJOR, PH_ABI_MINOR + 1);
  if (ph_status* s = entry.init(&newer.base)) {
    const std::string message = host::status_message(s);
    base->status_release(base, s);
    throw CheckFailed("init refuses a host of ABI " + version_text(PH_ABI_MAJOR, PH_ABI_MINOR + 1) +
                      " (a later minor, table " + std::to_string(sizeof(FutureHost)) +
                      " bytes): " + message);
  }
  entry.deinit();

  FutureHost other = future_host(PH_ABI_MAJOR + 1, 0);
  ph_status* s = entry.init(&other.base);
  if (!s) {
    entry.deinit();
    throw CheckFailed("init accepts a host of ABI " + version_text(PH_ABI_MAJOR + 1, 0) +
                      " (another major); it must return PH_ERR_UNSUPPORTED");
  }
  const ph_code code = host::status_code(s);
  const std::string message = host::status_message(s);
  base->status_release(base, s);
  require(code == PH_ERR_UNSUPPORTED,
          "init refuses a host of another major with code " + std::to_string(code) +
              " instead of PH_ERR_UNSUPPORTED (" + std::to_string(PH_ERR_UNSUPPORTED) + ")");
  report.note("init: accepts a host of ABI " + version_text(PH_ABI_MAJOR, PH_ABI_MINOR + 1) +
              " with a larger table; refuses ABI " + version_text(PH_ABI_MAJOR + 1, 0) + ": \"" +
              message + "\"");
}

void check_metadata(const Context& ctx, Report& report) {
  const auto library = host::PluginLibrary::load(ctx.plugin);
  const ph_method_descriptor& d = library->descriptor();
  require(d.struct_size >= offsetof(ph_method_descriptor, n_options) + sizeof(d.n_options),
          "descriptor struct_size " + std::to_string(d.struct_size) +
              " is smaller than the ABI 1.0 descriptor");
  require(d.name && std::regex_match(d.name, std::regex("[a-z0-9_]+")),
          std::string("descriptor name \"") + (d.name ? d.name : "(null)") +
              "\" does not match [a-z0-9_]+");
  require(d.peft_type && std::regex_match(d.peft_type, std::regex("[A-Z][A-Z0-9_]*")),
          std::string("peft_type \"") + (d.peft_type ? d.peft_type : "(null)") +
              "\" is not a non-empty UPPER_CASE name");
  require(d.version &&
              std::regex_match(d.version, std::regex(R"(\d+\.\d+\.\d+([-+][0-9A-Za-z.+-]+)?)")),
          std::string("version \"") + (d.version ? d.version : "(null)") +
              "\" is not a semantic version (MAJOR.MINOR.PATCH)");
  require(nonblank(d.description), "the description is empty");
  require(d.n_options == 0 || d.options,
          "n_options is " + std::to_string(d.n_options) + " but options is NULL");

  std::set<std::string> names;
  for (uint32_t i = 0; i < d.n_options; ++i) {
    const ph_option& o = d.options[i];
    const std::string where = "option " + std::to_string(i);
    require(o.struct_size >= offsetof(ph_option, nullable) + sizeof(o.nullable),
            where + ": struct_size " + std::to_string(o.struct_size) +
                " is smaller than the ABI 1.0 ph_option");
    require(o.name && *o.name, where + " has no name");
    const std::string name = o.name;
    require(names.insert(name).second, "option \"" + name + "\" is declared twice");
    if (!std::regex_match(name, std::regex("[a-z][a-z0-9_]*")))
      report.warn("option \"" + name + "\" is not a lower_snake_case adapter_config.json key");
    require(nonblank(o.help), "option \"" + name + "\" has no help text");
    require(o.type >= PH_OPTION_INT && o.type <= PH_OPTION_INT_LIST,
            "option \"" + name + "\" has an unknown type " + std::to_string(o.type));
    if (o.type == PH_OPTION_CHOICE)
      require(!host::choices_of(o).empty(), "choice option \"" + name + "\" has no choices");
    if (o.type == PH_OPTION_INT || o.type == PH_OPTION_FLOAT || o.type == PH_OPTION_INT_LIST)
      require(o.min_value <= o.max_value, "option \"" + name + "\" has min_value > max_value");
    require(o.default_value != nullptr, "option \"" + name + "\" has no default");
    nlohmann::json value;
    try {
      value = nlohmann::json::parse(o.default_value);
    } catch (const std::exception&) {
      throw CheckFailed("option \"" + name + "\": default " + o.default_value +
                        " is not JSON text");
    }
    const std::string problem = declaration_problem(o, value);
    require(problem.empty(), "option \"" + name + "\" (" + type_name(o.type) + "): default " +
                                 o.default_value + " is " + problem);
  }

  nlohmann::json resolved;
  try {
    resolved = host::resolve_options(d, nlohmann::json::object(), {});
  } catch (const std::exception& e) {
    throw CheckFailed(std::string("the defaults do not resolve: ") + e.what());
  }
  for (const auto& name : names)
    require(resolved.contains(name), "resolved options lack \"" + name + "\"");
  require(d.n_options == 0 || !host::describe_options(d).empty(), "describe_options is empty");
  report.note(std::string(d.name) + " " + d.version + " (" + d.peft_type + "), " +
              std::to_string(d.n_options) + " options, defaults " + resolved.dump());
  // Task types (since 1.1): codes this runner does not know are a later minor's, not errors.
  std::string tasks;
  for (TaskType t : host::declared_task_types(d))
    tasks += (tasks.empty() ? "" : ", ") + std::string(task_type_name(t));
  const bool declares = PH_HAS(&d, ph_method_descriptor, n_task_types) && d.n_task_types > 0;
  report.note("task types: " + (declares ? (tasks.empty() ? "none this runner knows" : tasks)
                                         : std::string("not declared (offered every one)")));
}

void check_load_unload(const Context& ctx, Report& report) {
  constexpr int kCycles = 20;
  require(mappings_of(ctx.plugin).empty(),
          "the plugin is mapped before the first load (left loaded by an earlier check?)");
  const Model model = make_random_model(tiny_model_config(), ctx.seed);
  const auto tokenizer = make_byte_tokenizer(model.config.vocab_size);
  const size_t fds_before = open_fd_count();
  for (int cycle = 1; cycle <= kCycles; ++cycle) {
    {
      auto library = host::PluginLibrary::load(ctx.plugin);
      const auto options =
          host::resolve_options(library->descriptor(), nlohmann::json::object(), ctx.sets);
      host::ModelHost model_host(model, tokenizer.get());
      auto instance = std::make_unique<host::MethodInstance>(library, model_host, options,
                                                             ctx.seed + (uint64_t)cycle);
      library.reset();  // the instance keeps the library loaded
      const int64_t tasks =
          options.contains("num_tasks") && options["num_tasks"].is_number_integer()
              ? options["num_tasks"].get<int64_t>()
              : 0;
      const Injection injection =
          instance->forward(1, tasks > 0 ? std::vector<int64_t>{0} : std::vector<int64_t>{}, false);
      require(all_finite(injection), "cycle " + std::to_string(cycle) + ": non-finite injection");
    }
    const auto left = mappings_of(ctx.plugin);
    if (!left.empty())
      throw CheckFailed("after unload " + std::to_string(cycle) +
                        " the library is still mapped (/proc/self/maps: " + left.front() +
                        "); a STB_GNU_UNIQUE symbol, a thread or a reference from another "
                        "library keeps it loaded");
  }
  const size_t fds_after = open_fd_count();
  if (fds_after > fds_before)
    report.warn("open file descriptors grew from " + std::to_string(fds_before) + " to " +
                std::to_string(fds_after) + " over " + std::to_string(kCycles) + " cycles");
  report.note(std::to_string(kCycles) + " cycles; unmapped after each");
}

}  // namespace ph::validate
