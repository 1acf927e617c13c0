// TextStream: streamed text equals the decoded whole, with SentencePiece's dropped
// leading space and characters split over byte tokens handled.
#include <catch.hpp>

#include <string>
#include <vector>

#include "models/generate/text_stream.h"

namespace {

// A tokenizer shaped like SentencePiece with byte fallback: ids 0..255 are raw bytes,
// 256 is "▁" (a space), 300+ are words with a leading "▁". Decoding drops the space a
// sequence starts with and writes U+FFFD for each byte of an incomplete UTF-8 sequence.
class FakeSentencePiece : public ph::Tokenizer {
 public:
  std::vector<int32_t> encode(std::string_view) const override { return {}; }
  std::string decode(const std::vector<int32_t>& ids) const override {
    std::string raw;
    for (int32_t id : ids) {
      if (id < 256)
        raw += static_cast<char>(id);
      else if (id == 256)
        raw += ' ';
      else
        raw += " " + kWords.at(id - 300);
    }
    if (!raw.empty() && raw[0] == ' ') raw.erase(0, 1);
    return replace_incomplete(raw);
  }
  int vocab_size() const override { return 300 + int(kWords.size()); }
  int bos_id() const override { return -1; }
  int eos_id() const override { return -1; }

  static inline const std::vector<std::string> kWords = {"computer", "is", "café"};

 private:
  static std::string replace_incomplete(const std::string& s) {
    std::string out;
    for (size_t i = 0; i < s.size();) {
      const unsigned char c = s[i];
      const size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : 4;
      if (i + len > s.size()) {
        for (; i < s.size(); ++i) out += "\xEF\xBF\xBD";
        break;
      }
      out.append(s, i, len);
      i += len;
    }
    return out;
  }
};

std::string stream_all(const ph::Tokenizer& tok, const std::vector<int32_t>& context,
                       const std::vector<int32_t>& generated, std::vector<std::string>* pieces) {
  ph::TextStream stream(tok, context);
  std::string out;
  for (int32_t id : generated) {
    const std::string piece = stream.push(id);
    if (pieces) pieces->push_back(piece);
    out += piece;
  }
  return out + stream.finish();
}

}  // namespace

TEST_CASE("stable_utf8_prefix holds back incomplete characters and U+FFFD") {
  CHECK(ph::stable_utf8_prefix("abc") == 3);
  CHECK(ph::stable_utf8_prefix("caf\xC3") == 3);            // é missing its 2nd byte
  CHECK(ph::stable_utf8_prefix("caf\xC3\xA9") == 5);        // é complete
  CHECK(ph::stable_utf8_prefix("x\xF0\x9F\x98") == 1);      // 4-byte emoji, 3 of 4 bytes
  CHECK(ph::stable_utf8_prefix("x\xF0\x9F\x98\x80") == 5);  // complete
  CHECK(ph::stable_utf8_prefix("ok\xEF\xBF\xBD\xEF\xBF\xBD") == 2);
  CHECK(ph::stable_utf8_prefix("") == 0);
}

TEST_CASE("TextStream keeps the first word's space and never splits a character") {
  const FakeSentencePiece tok;
  // Context "The" (bytes), then " computer", " is", then "é" as two byte tokens, " café".
  const std::vector<int32_t> context = {'T', 'h', 'e'};
  const std::vector<int32_t> generated = {300, 301, 256, 0xC3, 0xA9, 302};
  std::vector<std::string> pieces;
  const std::string text = stream_all(tok, context, generated, &pieces);
  CHECK(text == " computer is é café");
  REQUIRE(pieces.size() == generated.size());
  CHECK(pieces[0] == " computer");  // decoding the token alone would give "computer"
  CHECK(pieces[3].empty());         // half of é: held back, not U+FFFD
  CHECK(pieces[4] == "\xC3\xA9");

  // Without context, the stream is the plain decode of the generated ids.
  CHECK(stream_all(tok, {}, generated, nullptr) == tok.decode(generated));
  // A sequence that ends inside a character: finish() gives what the decoder gives.
  CHECK(stream_all(tok, context, {300, 0xC3}, nullptr) == " computer\xEF\xBF\xBD");
}
