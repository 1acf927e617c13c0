#!/usr/bin/env python3
"""The Cartridges distillation demo's data, from the demo model's own quotes.

The demo model (models/demo, llama2.c, 1M parameters) reads 256 tokens at most, so a
few hundred quotes cannot be one teacher context. They are cut into chunks of a few
quotes (about 140 tokens each); every training example carries its chunk as "context"
(what the teacher reads first) and one of the chunk's quotes as "text" (what the student,
with only the cartridge, must predict). The held-out questions ask for the end of a
quote given its beginning ({"input": "Quote: BEGINNING", "output": " END"}); the
in-context file puts the quote's chunk before the same question (the text kept in the
context, for comparison).

Usage: make_data.py OUT_DIR [N_QUOTES]   (default 300 quotes, the shortest of the
topic task's training quotes, in file order)
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TOPIC = os.path.join(HERE, "..", "..", "models", "demo", "tasks", "topic", "train.jsonl")
CHUNK_CHARS = 280  # about 140 tokens of the demo tokenizer (about 2 characters a token)


def quotes(n):
    out = []
    for line in open(TOPIC, encoding="utf-8"):
        text = json.loads(line)["input"]
        body = text[len("Quote: "):-len("\nTopic:")].strip()
        if 40 <= len(body) <= 160 and "\n\n" not in body:
            out.append(body)
        if len(out) == n:
            break
    return out


def chunks(qs):
    out, cur = [], []
    for q in qs:
        if cur and sum(len(c) + 1 for c in cur) + len(q) > CHUNK_CHARS:
            out.append(cur)
            cur = []
        cur.append(q)
    if cur:
        out.append(cur)
    return out


def main():
    out_dir = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    os.makedirs(out_dir, exist_ok=True)
    groups = chunks(quotes(n))
    with open(os.path.join(out_dir, "train.jsonl"), "w") as train, \
         open(os.path.join(out_dir, "heldout.jsonl"), "w") as held, \
         open(os.path.join(out_dir, "heldout-in-context.jsonl"), "w") as inctx:
        for group in groups:
            context = "\n".join(group)
            for q in group:
                train.write(json.dumps({"context": context, "text": q}) + "\n")
                words = q.split(" ")
                cut = max(1, len(words) // 2)
                question = "Quote: " + " ".join(words[:cut])
                answer = " " + " ".join(words[cut:])
                held.write(json.dumps({"context": context, "input": question,
                                       "output": answer}) + "\n")
                inctx.write(json.dumps({"input": context + "\n" + question,
                                        "output": answer}) + "\n")
    with open(os.path.join(out_dir, "corpus.txt"), "w") as corpus:
        corpus.write("\n".join(q for g in groups for q in g) + "\n")
    print(f"{sum(len(g) for g in groups)} quotes in {len(groups)} chunks -> {out_dir}")


if __name__ == "__main__":
    main()
