#include "host/trainer/dataset.h"

#include <algorithm>
#include <cstdint>
#include <fstream>

#include <nlohmann/json.hpp>

#include "models/common/error.h"
#include "models/common/json_file.h"

namespace ph::trainer {

namespace {

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

std::string field_string(const nlohmann::json& j, const char* key, const std::string& where) {
  const auto& v = j.at(key);
  if (!v.is_string()) throw Error(where + ": field \"" + key + "\" must be a string");
  return v.get<std::string>();
}

// A list of token ids: non-negative integers below 2^31.
std::vector<int32_t> field_ids(const nlohmann::json& j, const char* key, const std::string& where) {
  const auto& v = j.at(key);
  if (!v.is_array()) throw Error(where + ": field \"" + key + "\" must be a list of token ids");
  std::vector<int32_t> ids;
  for (const auto& id : v) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX)
      throw Error(where + ": field \"" + key + "\" holds " + id.dump() +
                  ", not a token id (a non-negative integer)");
    ids.push_back((int32_t)id.get<int64_t>());
  }
  return ids;
}

// The example's content: text, input/output, a label, or token ids.
void read_fields(const nlohmann::json& j, const std::string& where, Example& ex) {
  if (j.contains("label")) {
    if (j.contains("output") || j.contains("output_ids"))
      throw Error(where + ": give \"label\" (classification) or an output, not both");
    ex.label = field_string(j, "label", where);
    ex.has_label = true;
  }
  if (j.contains("input_ids")) {
    ex.ids = true;
    ex.input_ids = field_ids(j, "input_ids", where);
    if (j.contains("output_ids")) {
      ex.output_ids = field_ids(j, "output_ids", where);
      ex.has_output = true;
    }
  } else if (j.contains("text")) {
    ex.input = field_string(j, "text", where);
  } else if (j.contains("input") && (j.contains("output") || ex.has_label)) {
    ex.input = field_string(j, "input", where);
    if (!ex.has_label) {
      ex.output = field_string(j, "output", where);
      ex.has_output = true;
    }
  } else {
    throw Error(where +
                ": needs a \"text\" field, or \"input\" and \"output\" fields (or \"label\" "
                "with \"text\" or \"input\"; or \"input_ids\")");
  }
}

}  // namespace

std::vector<Example> read_jsonl(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot open the data file");
  std::vector<Example> examples;
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (trim(line).empty()) continue;
    const std::string where = path + ":" + std::to_string(number);
    const nlohmann::json j = parse_json(line, where);
    if (!j.is_object()) throw Error(where + ": expected a JSON object");
    Example ex;
    ex.line = number;
    read_fields(j, where, ex);
    if (j.contains("task")) {
      const auto& t = j["task"];
      if (t.is_string())
        ex.task = t.get<std::string>();
      else if (t.is_number_integer() && t.get<int64_t>() >= 0)
        ex.task = std::to_string(t.get<int64_t>());
      else
        throw Error(where + ": field \"task\" must be a name or a non-negative index");
    }
    if (j.contains("context")) {
      ex.context = field_string(j, "context", where);
      ex.has_context = true;
    }
    examples.push_back(std::move(ex));
  }
  if (in.bad()) throw Error(path + ": read error");
  return examples;
}

std::vector<int64_t> TaskMap::ids(const std::vector<Example>& examples, const std::string& file,
                                  bool learn, bool per_task) {
  const bool any = std::any_of(examples.begin(), examples.end(),
                               [](const Example& ex) { return !ex.task.empty(); });
  std::vector<int64_t> out;
  for (const Example& ex : examples) {
    if (!any)  // one task: id 0 for a per-task method, none otherwise
      out.push_back(per_task ? 0 : -1);
    else if (per_task || !ex.task.empty())  // a per-task method needs it on every line
      out.push_back(id(ex, file, learn));
    else
      out.push_back(-1);
  }
  return out;
}

int64_t TaskMap::id(const Example& ex, const std::string& file, bool learn) {
  const std::string where = file + ":" + std::to_string(ex.line);
  if (ex.task.empty()) throw Error(where + ": the method needs a \"task\" field");
  for (size_t i = 0; i < names_.size(); ++i)
    if (names_[i] == ex.task) return (int64_t)i;
  const bool numeric =
      std::all_of(ex.task.begin(), ex.task.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (numeric && ex.task.size() < 10) {
    const int64_t index = std::stoll(ex.task);
    if (names_.empty() || index < (int64_t)names_.size()) return index;
  }
  if (learn) {
    names_.push_back(ex.task);
    return (int64_t)names_.size() - 1;
  }
  std::string known;
  for (const auto& n : names_) known += (known.empty() ? "" : ", ") + n;
  throw Error(where + ": unknown task \"" + ex.task + "\" (known: " + known + ")");
}

std::vector<TemplatePart> default_template(int n_virtual) {
  std::vector<TemplatePart> parts;
  if (n_virtual > 0) parts.push_back({TemplatePart::kVirtual, n_virtual, ""});
  parts.push_back({TemplatePart::kInput, 0, ""});
  parts.push_back({TemplatePart::kOutput, 0, ""});
  return parts;
}

std::vector<TemplatePart> parse_template(const std::string& text, int n_virtual) {
  std::vector<TemplatePart> parts;
  std::string literal;
  auto flush = [&] {
    const std::string t = trim(literal);
    if (!t.empty()) parts.push_back({TemplatePart::kLiteral, 0, t});
    literal.clear();
  };
  int virtual_total = 0;
  bool has_input = false, has_output = false;
  for (size_t i = 0; i < text.size();) {
    if (text.compare(i, 3, "[P:") == 0) {
      const size_t close = text.find(']', i);
      if (close == std::string::npos)
        throw Error("template \"" + text + "\": unclosed [P:k] at character " + std::to_string(i));
      const std::string count = text.substr(i + 3, close - i - 3);
      if (count.empty() || count.size() > 6 ||
          !std::all_of(count.begin(), count.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
          std::stoi(count) == 0)
        throw Error("template \"" + text + "\": [P:" + count + "] needs a positive count");
      flush();
      parts.push_back({TemplatePart::kVirtual, std::stoi(count), ""});
      virtual_total += std::stoi(count);
      i = close + 1;
    } else if (text.compare(i, 7, "{input}") == 0 || text.compare(i, 6, "{text}") == 0) {
      flush();
      parts.push_back({TemplatePart::kInput, 0, ""});
      has_input = true;
      i += text.compare(i, 7, "{input}") == 0 ? 7 : 6;
    } else if (text.compare(i, 8, "{output}") == 0) {
      flush();
      parts.push_back({TemplatePart::kOutput, 0, ""});
      has_output = true;
      i += 8;
    } else {
      literal += text[i++];
    }
  }
  flush();
  if (!has_input) throw Error("template \"" + text + "\": has no {input}");
  if (!has_output) parts.push_back({TemplatePart::kOutput, 0, ""});
  if (virtual_total != n_virtual)
    throw Error("template \"" + text + "\": places " + std::to_string(virtual_total) +
                " virtual tokens, the method has " + std::to_string(n_virtual));
  return parts;
}

Encoded encode_example(const Example& ex, const Tokenizer& tokenizer,
                       const std::vector<TemplatePart>& parts, const EncodeOptions& options) {
  // Token pieces in template order; the input may be cut later.
  struct Piece {
    std::vector<int32_t> tokens;
    bool scored;
    bool is_input;
    bool is_output;
    int virtual_first = -1;  // >= 0: `tokens.size()` virtual slots from this index
  };
  std::vector<Piece> pieces;
  int next_virtual = 0;
  bool bos_placed = options.bos_id < 0;
  auto add_bos = [&] {
    if (bos_placed) return;
    pieces.push_back({{options.bos_id}, false, false, false});
    bos_placed = true;
  };
  for (const TemplatePart& part : parts) {
    switch (part.kind) {
      case TemplatePart::kVirtual:
        pieces.push_back({std::vector<int32_t>(part.count), false, false, false, next_virtual});
        next_virtual += part.count;
        break;
      case TemplatePart::kLiteral:
        add_bos();
        pieces.push_back({tokenizer.encode(part.literal), false, false, false});
        break;
      case TemplatePart::kInput:
        add_bos();
        pieces.push_back({tokenizer.encode(ex.input), !ex.has_output, true, false});
        break;
      case TemplatePart::kOutput:
        if (!ex.has_output) break;
        add_bos();
        pieces.push_back({tokenizer.encode(ex.output), true, false, true});
        if (options.eos_id >= 0) pieces.back().tokens.push_back(options.eos_id);
        break;
    }
  }

  Encoded out;
  size_t real = 0;
  for (const Piece& p : pieces)
    if (p.virtual_first < 0) real += p.tokens.size();
  if (options.max_length > 0 && real > (size_t)options.max_length) {
    size_t cut = real - options.max_length;
    out.truncated = (int)cut;
    for (Piece& p : pieces) {  // input/output data: drop the input's first tokens
      if (!p.is_input || !ex.has_output) continue;
      const size_t n = std::min(cut, p.tokens.size());
      p.tokens.erase(p.tokens.begin(), p.tokens.begin() + n);
      cut -= n;
    }
    for (auto it = pieces.rbegin(); it != pieces.rend() && cut > 0; ++it) {  // then the end
      if (it->virtual_first >= 0) continue;
      const size_t n = std::min(cut, it->tokens.size());
      it->tokens.resize(it->tokens.size() - n);
      cut -= n;
    }
  }
  for (const Piece& p : pieces) {
    if (p.is_output) out.prompt_length = (int)out.sequence.tokens.size();
    for (size_t i = 0; i < p.tokens.size(); ++i) {
      const bool virt = p.virtual_first >= 0;
      out.sequence.tokens.push_back(virt ? virtual_slot(p.virtual_first + (int)i) : p.tokens[i]);
      out.sequence.labels.push_back(p.scored && !virt ? p.tokens[i] : kIgnoreLabel);
    }
  }
  if (!ex.has_output) out.prompt_length = (int)out.sequence.tokens.size();
  return out;
}

}  // namespace ph::trainer
