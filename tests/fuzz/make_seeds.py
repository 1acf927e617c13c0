#!/usr/bin/env python3
"""Writes the seed inputs of the fuzz corpus (tests/fuzz/corpus/<target>/seed-*): small
files of every shape each parser accepts, made from the project's own files where they
are small enough for fast fuzzing. Inputs that once crashed are kept beside them under
their own names (crash-*); this script never touches those. Run from anywhere."""
import json, os, struct, shutil

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(os.path.dirname(here))
corpus = os.path.join(here, "corpus")


def put(target, name, data):
    d = os.path.join(corpus, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def safetensors(tensors, metadata=None):
    header, blob = {}, b""
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(blob), len(blob) + len(data)]}
        blob += data
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + blob


# safetensors: each dtype the reader widens, metadata, an empty tensor.
put("safetensors", "dtypes", safetensors({
    "f64": ("F64", [2], struct.pack("<2d", 1.5, -2.0)),
    "f32": ("F32", [2, 2], struct.pack("<4f", 1, 2, 3, 4)),
    "f16": ("F16", [3], struct.pack("<3e", 0.5, -1.0, 65504.0)),
    "bf16": ("BF16", [1], b"\x80\x3f"),
    "i64": ("I64", [2], struct.pack("<2q", 7, -1)),
    "i32": ("I32", [1], struct.pack("<i", 3)),
    "empty": ("F32", [0, 4], b""),
}, {"format": "pt"}))
put("safetensors", "prompt", safetensors({"prompt_embeddings": ("F32", [4, 8], bytes(128))},
                                          {"format": "pt"}))

# config.json: the project's model folders.
for name, path in [("llama-tiny", "tests/fixtures/models/llama-tiny/config.json"),
                   ("gpt2-tiny", "tests/fixtures/models/gpt2-tiny/config.json"),
                   ("demo", "models/demo/hf/config.json")]:
    put("hf_config", name, open(os.path.join(root, path), "rb").read())
put("hf_config", "qwen2", json.dumps({
    "model_type": "qwen2", "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 64,
    "max_position_embeddings": 128, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
    "tie_word_embeddings": True, "bos_token_id": None, "eos_token_id": 3}))

# config.json beside the tiny Llama's weights: its own, and sizes off by a little.
tiny = json.load(open(os.path.join(root, "tests/fixtures/models/llama-tiny/config.json")))
put("hf_folder", "llama-tiny", json.dumps(tiny))
for field, value in [("intermediate_size", 2 ** 23), ("num_hidden_layers", 3),
                     ("max_position_embeddings", 2 ** 31 - 1), ("vocab_size", tiny["vocab_size"] + 1)]:
    put("hf_folder", "llama-tiny-" + field, json.dumps(dict(tiny, **{field: value})))

# tokenizer.json + NUL + text.
texts = ["Hello world! It's 2026, café\u0301 naïve 東京 🙂  \t\n  code(x) -> y",
         "<|endoftext|> <|im_start|>user\nHi<|im_end|>"]
bytes_vocab = {}
# GPT-2's byte-to-unicode table.
bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
cs, n = bs[:], 0
for b in range(256):
    if b not in bs:
        bs.append(b); cs.append(256 + n); n += 1
byte_chars = [chr(c) for c in cs]
vocab = {ch: i for i, ch in enumerate(byte_chars)}
merges = ["Ġ t", "h e", "Ġt he", "l l", "e ll", "Ġ w", "o r"]
for m in merges:
    vocab.setdefault(m.replace(" ", ""), len(vocab))
byte_level = {
    "version": "1.0",
    "added_tokens": [{"id": len(vocab), "content": "<|endoftext|>", "single_word": False,
                      "lstrip": False, "rstrip": False, "normalized": False, "special": True}],
    "normalizer": None,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
    "post_processor": None,
    "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
    "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
              "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False,
              "vocab": vocab, "merges": merges},
}
qwen = json.loads(json.dumps(byte_level))
qwen["normalizer"] = {"type": "NFC"}
qwen["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
    {"type": "Split", "pattern": {"Regex": "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
     "behavior": "Isolated", "invert": False},
    {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]}
sp_vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
for b in range(256):
    sp_vocab["<0x%02X>" % b] = len(sp_vocab)
for piece in ["▁", "▁H", "ello", "▁w", "orld", "▁Hello"]:
    sp_vocab[piece] = len(sp_vocab)
metaspace = {
    "version": "1.0", "added_tokens": [],
    "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"},
                                                       {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
    "pre_tokenizer": None, "post_processor": None,
    "decoder": {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"},
        {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
    "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
              "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True,
              "vocab": sp_vocab, "merges": ["▁ H", "e l", "el l", "ell o", "▁ w", "o r", "or l", "orl d", "▁H ello"]},
}
def added(i, content, **extra):
    return dict({"id": i, "content": content, "single_word": False, "lstrip": False,
                 "rstrip": False, "normalized": False, "special": True}, **extra)


# BERT: BertNormalizer, BertPreTokenizer, WordPiece, TemplateProcessing with a pair.
wp_vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "hello", "world",
                                        "##s", "cafe", "!", "東", "京", "code", "(", ")", "x"])}
bert = {
    "version": "1.0", "added_tokens": [added(wp_vocab[t], t) for t in ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]],
    "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True,
                   "strip_accents": None, "lowercase": True},
    "pre_tokenizer": {"type": "BertPreTokenizer"},
    "post_processor": {"type": "TemplateProcessing",
                       "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                  {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
                       "pair": ["[CLS]", "$A", "[SEP]", "$B:1", "[SEP]:1"],
                       "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                                          "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}},
    "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
    "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
              "max_input_chars_per_word": 100, "vocab": wp_vocab},
}
# T5: Precompiled (the fixture's charsmap) + Replace, WhitespaceSplit + Metaspace, Unigram.
t5_fixture = json.load(open(os.path.join(root, "tests/fixtures/tokenizers/t5/tokenizer.json"), encoding="utf-8"))
t5_pieces = [["<pad>", 0.0], ["</s>", 0.0], ["<unk>", 0.0], ["▁", -2.0], ["▁H", -4.0], ["ello", -5.0],
             ["▁world", -6.0], ["l", -3.0], ["o", -3.0], ["<0x41>", -9.0]]
t5 = {
    "version": "1.0", "added_tokens": [added(0, "<pad>"), added(1, "</s>"), added(2, "<unk>")],
    "normalizer": {"type": "Sequence", "normalizers": [t5_fixture["normalizer"]["normalizers"][0],
                                                       {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "},
                                                       {"type": "StripAccents"}, {"type": "Lowercase"}]},
    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "WhitespaceSplit"},
        {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True}]},
    "post_processor": {"type": "TemplateProcessing", "single": ["$A", "</s>"], "pair": ["$A", "</s>", "$B", "</s>"],
                       "special_tokens": {"</s>": {"id": "</s>", "ids": [1], "tokens": ["</s>"]}}},
    "decoder": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True},
    "model": {"type": "Unigram", "unk_id": 2, "vocab": t5_pieces, "byte_fallback": True},
}
# RoBERTa's and Bloom's post-processors and Bloom's class nested in a class.
roberta = json.loads(json.dumps(byte_level))
roberta["post_processor"] = {"type": "RobertaProcessing", "sep": ["<|endoftext|>", len(vocab)],
                             "cls": ["<|endoftext|>", len(vocab)], "trim_offsets": True, "add_prefix_space": False}
roberta["added_tokens"][0]["lstrip"] = True
bloom = json.loads(json.dumps(byte_level))
bloom["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
    {"type": "Split", "pattern": {"Regex": " ?[^(\\s|[.,!?…。，、।۔،])]+"}, "behavior": "Isolated", "invert": False},
    {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}
bloom["post_processor"] = {"type": "Sequence", "processors": [
    {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": False},
    {"type": "BertProcessing", "sep": ["<|endoftext|>", len(vocab)], "cls": ["<|endoftext|>", len(vocab)]}]}
for name, spec in [("byte_level", byte_level), ("qwen_nfc", qwen), ("metaspace", metaspace),
                   ("bert", bert), ("t5_unigram", t5), ("roberta", roberta), ("bloom", bloom)]:
    for i, t in enumerate(texts):
        put("tokenizer_json", "%s-%d" % (name, i), json.dumps(spec, ensure_ascii=False) + "\0" + t)

# text + NUL + tokenizer.bin (the demo's is small; binary, so the text comes first).
demo_bin = open(os.path.join(root, "models/demo/tokenizer.bin"), "rb").read()
for i, t in enumerate(texts):
    put("tokenizer_bin", "demo-%d" % i, t.encode() + b"\0" + demo_bin)

# llama2.c .bin: a tiny legacy (version 0) checkpoint, shared and separate head.
def llama2c(dim=8, hidden=16, layers=1, heads=2, kv_heads=2, vocab=16, seq=8, shared=True):
    head = dim // heads
    n = (vocab * dim + layers * dim + layers * dim * dim + 2 * layers * dim * kv_heads * head
         + layers * dim * dim + layers * dim + 3 * layers * dim * hidden + dim + seq * head)
    if not shared:
        n += vocab * dim
    v = vocab if shared else -vocab
    return struct.pack("<7i", dim, hidden, layers, heads, kv_heads, v, seq) + struct.pack(
        "<%df" % n, *[((i * 7919) % 101 - 50) / 500.0 for i in range(n)])
put("llama2c", "shared", llama2c())
put("llama2c", "separate-head-gqa", llama2c(heads=2, kv_heads=1, shared=False))

# JSONL data: the demo's tasks.
lines = open(os.path.join(root, "models/demo/tasks/topic/test.jsonl"), encoding="utf-8").read().splitlines()
put("jsonl", "topic", "\n".join(lines[:3]) + "\n")
put("jsonl", "mixed", '{"text": "plain text"}\n\n{"input": "a", "output": " b", "task": "zippy"}\n'
                      '{"text": "c", "task": 2}\n')

# Adapter folders: PEFT-written adapter_config.json files, with and without ours beside.
for case in ["prompt_tuning", "prefix_tuning", "p_tuning_mlp"]:
    cfg = {"peft_type": case.split("_mlp")[0].upper(), "task_type": "CAUSAL_LM", "num_virtual_tokens": 4,
           "token_dim": 16, "num_transformer_submodules": 1, "num_attention_heads": 4, "num_layers": 2,
           "base_model_name_or_path": "tests/fixtures/models/llama-tiny", "inference_mode": True}
    put("adapter_info", "peft-" + case, json.dumps(cfg))
put("adapter_info", "prompthost", json.dumps({"peft_type": "PROMPT_TUNING", "num_virtual_tokens": 4}) + "\0" +
    json.dumps({"plugin": "prompt_tuning", "options": {"num_virtual_tokens": 4}, "task_names": ["a", "b"],
                "model": {"arch": "llama", "dim": 16}, "base_model": "models/demo/hf"}))

# POST /v1/completions bodies: each prompt form (a string, strings, ids, lists of ids),
# every field the parser reads, and a streamed request.
put("completion_request", "minimal", json.dumps({"model": "demo", "prompt": "Never trust"}))
put("completion_request", "every_field", json.dumps({
    "model": "multi:topic", "prompt": ["a", "b"], "max_tokens": 8, "temperature": 0.7, "top_p": 0.9,
    "top_k": 5, "seed": 3, "stop": ["\n", "Q:"], "n": 2, "echo": True, "logprobs": 3,
    "best_of": 2, "frequency_penalty": 0, "presence_penalty": 0, "logit_bias": {}, "user": "u",
    "suffix": None, "return_token_ids": True}))
put("completion_request", "ids", json.dumps({"model": "pt", "prompt": [[1, 2, 3], [4]], "task": "topic"}))
put("completion_request", "stream", json.dumps({"model": "demo", "prompt": [5, 6], "stream": True,
                                                "stream_options": {"include_usage": True}}))

# The hostile inputs of shared/robustness that are parser inputs.
for target, name in [("llama2c", "llama2c_validate_overflow.bin"), ("hf_config", "config_validate_overflow.json")]:
    src = os.path.join(root, "tests/fixtures/robustness", name)
    if os.path.exists(src):
        shutil.copy(src, os.path.join(corpus, target, "crash-" + name))
