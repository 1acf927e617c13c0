// `prompthost tokenize`: the ids a tokenizer gives a text (no BOS/EOS added; with
// --special inside the model's special tokens, and with --pair for a pair of texts), or
// with --decode the text of ids, to see how a model reads what it is given.
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <iostream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include "host/cli/bundled_demo.h"
#include "host/cli/commands.h"
#include "host/cli/tokenizer_path.h"
#include "models/common/error.h"
#include "models/tokenizer/text_util.h"
#include "models/tokenizer/tokenizer.h"

namespace ph::cli {

namespace {

namespace po = boost::program_options;
using json = nlohmann::json;

const char kPrefix[] = "prompthost tokenize: ";

// A command line that parses but asks for something meaningless: exit code 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Settings {
  std::string model;
  std::string tokenizer;  // empty: the model's
  std::string text;
  std::string text_file;              // "-": standard input
  std::string pair;                   // the second text of a pair
  std::vector<std::string> id_words;  // positional arguments: ids for --decode
  bool has_text = false;
  bool has_pair = false;
  bool special = false;
  bool no_special = false;
  bool decode = false;
  bool json = false;
};

po::options_description describe_options(Settings& s) {
  po::options_description desc("Options");
  // clang-format off
  desc.add_options()
    ("help,h", "show this help and exit")
    ("tokenizer", po::value(&s.tokenizer),
     "tokenizer file (tokenizer.json, tokenizer.model or tokenizer.bin) or a folder holding one")
    ("model", po::value(&s.model)->default_value(bundled_demo_path("hf"), "the bundled demo"),
     "take the tokenizer of this model: a Hugging Face model folder, or the tokenizer.bin "
     "beside a llama2.c .bin checkpoint (ignored with --tokenizer); default: the bundled "
     "demo model, models/demo/hf")
    ("text", po::value(&s.text), "the text to tokenize (with --decode: the ids)")
    ("text-file", po::value(&s.text_file),
     "read the text (with --decode: the ids) from this file; - reads standard input")
    ("pair", po::value(&s.pair),
     "a second text, encoded with the first as a pair (a question and a passage, two "
     "sentences to compare); the special tokens of the pair go in between, as with "
     "--special, and --json shows the type ids (0 for the first text, 1 for the second)")
    ("special", po::bool_switch(&s.special),
     "add the special tokens the model is given its input with (its tokenizer.json's "
     "post_processor: [CLS] TEXT [SEP] for BERT, <s> TEXT </s> for RoBERTa, TEXT </s> for "
     "T5, <bos> TEXT for Gemma; BOS, or else EOS, for a tokenizer.model or tokenizer.bin)")
    ("no-special", po::bool_switch(&s.no_special),
     "add no special tokens (the default for one text; with --pair, the two texts' ids "
     "joined)")
    ("decode", po::bool_switch(&s.decode),
     "the reverse: print the text of token ids, given as arguments, with --text or in "
     "--text-file, separated by spaces or commas (a [ ] around them is allowed)")
    ("json", po::bool_switch(&s.json),
     "print one JSON object instead: \"ids\" and \"tokens\" (the vocabulary's spelling of "
     "each), with --special or --pair also \"type_ids\", and with --decode also \"text\"");
  // clang-format on
  return desc;
}

void print_help(const po::options_description& desc) {
  std::cout
      << "Usage: prompthost tokenize [--tokenizer PATH | --model PATH] (--text TEXT | "
         "--text-file FILE) [--pair TEXT] [--special | --no-special] [--json]\n"
         "       prompthost tokenize [--tokenizer PATH | --model PATH] --decode "
         "(IDS... | --text IDS | --text-file FILE) [--json]\n\n"
         "Prints the token ids of TEXT space-separated on one line, as the tokenizer gives\n"
         "them (no BOS or EOS is added unless --special asks for the model's special\n"
         "tokens; a special token's literal text, such as <|im_start|>, becomes that\n"
         "token). With --pair, the ids of the two texts as a pair, special tokens included\n"
         "unless --no-special. With --decode, prints the text of the ids.\n\n"
      << desc
      << "\nExamples:\n"
         "  prompthost tokenize --text \"The computer is a fortune\"\n"
         "  prompthost tokenize --model models/demo/fortune-llama.bin --text \"Hello\" --json\n"
         "  prompthost tokenize --decode 339 802 263\n"
         "  prompthost tokenize --tokenizer bert/tokenizer.json --text \"Who?\" --pair \"Me.\" "
         "--json\n"
         "  echo \"Some long text\" | prompthost tokenize --tokenizer tokenizer.json "
         "--text-file -\n";
}

// Parses argv into settings; returns false after printing --help.
bool parse(int argc, char** argv, Settings& s) {
  po::options_description desc = describe_options(s);
  po::options_description hidden;
  hidden.add_options()("ids", po::value(&s.id_words));
  po::options_description all;
  all.add(desc).add(hidden);
  po::positional_options_description ids;
  ids.add("ids", -1);
  po::variables_map vm;
  po::store(po::command_line_parser(argc, argv).options(all).positional(ids).run(), vm);
  if (vm.count("help")) {
    print_help(desc);
    return false;
  }
  po::notify(vm);

  s.has_text = vm.count("text") > 0;
  s.has_pair = vm.count("pair") > 0;
  if (s.special && s.no_special) throw UsageError("give --special or --no-special, not both");
  if (s.decode && (s.has_pair || s.special || s.no_special)) {
    throw UsageError("--pair, --special and --no-special are for encoding, not --decode");
  }
  const int sources = int(s.has_text) + int(vm.count("text-file") > 0) + int(!s.id_words.empty());
  if (!s.id_words.empty() && !s.decode) {
    throw UsageError("unexpected argument '" + s.id_words[0] +
                     "': give the text with --text (arguments are ids, for --decode)");
  }
  if (sources == 0) {
    throw UsageError(s.decode ? "--decode needs ids: as arguments, --text or --text-file"
                              : "--text or --text-file is required");
  }
  if (sources > 1) {
    throw UsageError("give the input once: as --text, --text-file or (with --decode) arguments");
  }
  return true;
}

// The input: --text, the file of --text-file (or standard input), or the arguments.
std::string read_input(const Settings& s) {
  if (s.has_text) return s.text;
  if (s.text_file.empty()) {
    std::string joined;
    for (const std::string& word : s.id_words) joined += word + " ";
    return joined;
  }
  if (s.text_file != "-") return tok::read_file(s.text_file, "--text-file");
  std::ostringstream in;
  in << std::cin.rdbuf();
  if (std::cin.bad()) throw Error("cannot read standard input (--text-file -)");
  return in.str();
}

// Token ids written as text: non-negative integers separated by spaces, commas or
// brackets (so the "ids" list of --json can be pasted back).
std::vector<int32_t> parse_ids(const std::string& text) {
  std::vector<int32_t> ids;
  std::string word;
  const auto flush = [&] {
    if (word.empty()) return;
    const bool digits = word.find_first_not_of("0123456789") == std::string::npos;
    if (!digits || word.size() > 10 || std::stoll(word) > INT32_MAX) {
      throw UsageError("--decode: '" + word + "' is not a token id (a non-negative integer)");
    }
    ids.push_back(static_cast<int32_t>(std::stoll(word)));
    word.clear();
  };
  for (const char c : text) {
    if (std::isspace(static_cast<unsigned char>(c)) || c == ',' || c == '[' || c == ']') {
      flush();
    } else {
      word += c;
    }
  }
  flush();
  return ids;
}

std::string join_ids(const std::vector<int32_t>& ids) {
  std::string line;
  for (size_t i = 0; i < ids.size(); ++i) line += (i ? " " : "") + std::to_string(ids[i]);
  return line;
}

// {"ids": [...], "tokens": [...]} (and "text" for --decode). Bytes that are not UTF-8
// (a token holding part of a character) are shown as U+FFFD.
std::string json_line(const Tokenizer& tokenizer, const std::vector<int32_t>& ids,
                      const std::string* text, const std::vector<int32_t>* type_ids = nullptr) {
  json out = {{"ids", ids}, {"tokens", json::array()}};
  for (const int32_t id : ids) out["tokens"].push_back(tokenizer.piece(id));
  if (text) out["text"] = *text;
  if (type_ids) out["type_ids"] = *type_ids;
  return out.dump(-1, ' ', false, json::error_handler_t::replace);
}

int run(const Settings& s) {
  // Usage errors of the input come before loading the tokenizer, which can take a while.
  const std::string input = read_input(s);
  const std::vector<int32_t> given_ids = s.decode ? parse_ids(input) : std::vector<int32_t>();
  const std::unique_ptr<Tokenizer> tokenizer = load_tokenizer(tokenizer_path(s.model, s.tokenizer));

  std::string out;
  if (s.decode) {
    const std::string text = tokenizer->decode(given_ids);
    out = s.json ? json_line(*tokenizer, given_ids, &text) : text;
  } else if (s.has_pair || s.special) {
    // A pair has its special tokens unless --no-special; one text only with --special.
    const Encoding encoding = s.has_pair ? tokenizer->encode_pair(input, s.pair, !s.no_special)
                                         : tokenizer->encode_for_model(input, true);
    out = s.json ? json_line(*tokenizer, encoding.ids, nullptr, &encoding.type_ids)
                 : join_ids(encoding.ids);
  } else {
    const std::vector<int32_t> ids = tokenizer->encode(input);
    out = s.json ? json_line(*tokenizer, ids, nullptr) : join_ids(ids);
  }
  out += '\n';
  std::fwrite(out.data(), 1, out.size(), stdout);
  return kExitOk;
}

int usage_error(const char* message) {
  std::fprintf(stderr, "%s%s\n(prompthost tokenize --help lists the options)\n", kPrefix, message);
  return kExitUsage;
}

}  // namespace

int tokenize_command(int argc, char** argv) {
  Settings settings;
  try {
    if (!parse(argc, argv, settings)) return kExitOk;
  } catch (const po::error& e) {
    return usage_error(e.what());
  } catch (const UsageError& e) {
    return usage_error(e.what());
  }
  try {
    return run(settings);
  } catch (const UsageError& e) {  // ids that are not ids
    return usage_error(e.what());
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "%s%s\n", kPrefix, e.what());
    return kExitFailure;
  }
}

}  // namespace ph::cli
