#!/usr/bin/env python3
"""The PyTorch baseline for soft-prompt training on CPU: what a user gets from
a PyTorch + PEFT stack, reduced to the same arithmetic (frozen fp32 weights,
trainable prompt parameters, AdamW). Prints one JSON line.

  python3 torch_baseline.py --shape gpt2-small --method prompt_tuning \
      --batch 8 --seq 128 --virtual 20 --steps 10 --threads 2

Runs with Debian's python3-torch (apt-get install python3-torch)."""
import argparse
import json
import os
import resource
import statistics
import sys
import time

import torch

# (copied from the research folder; the reference models live beside it in bench/reference)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference"))
import ref_models as R  # noqa: E402

SHAPES = {
    "gpt2-small": {"model_type": "gpt2", "n_layer": 12, "n_embd": 768, "n_head": 12,
                   "vocab_size": 50257, "n_positions": 1024},
    "smollm2-135m": {"model_type": "llama", "num_hidden_layers": 30, "hidden_size": 576,
                     "intermediate_size": 1536, "num_attention_heads": 9,
                     "num_key_value_heads": 3, "vocab_size": 49152, "rope_theta": 100000.0,
                     "rms_norm_eps": 1e-5, "tie_word_embeddings": True,
                     "max_position_embeddings": 2048},
    "tiny-llama": {"model_type": "llama", "num_hidden_layers": 4, "hidden_size": 128,
                   "intermediate_size": 344, "num_attention_heads": 4,
                   "num_key_value_heads": 2, "vocab_size": 1024, "rope_theta": 10000.0,
                   "rms_norm_eps": 1e-5, "tie_word_embeddings": False,
                   "max_position_embeddings": 512},
    # a SEQ_CLS encoder (--workload cls), run by encoder_baseline.py
    "roberta-base": {"model_type": "roberta", "num_hidden_layers": 12, "hidden_size": 768,
                     "intermediate_size": 3072, "num_attention_heads": 12,
                     "vocab_size": 50265, "max_position_embeddings": 514, "pad_token_id": 1,
                     "layer_norm_eps": 1e-5, "num_labels": 2},
    # an encoder-decoder (SEQ_2_SEQ_LM, --workload lm), run by seq2seq_baseline.py
    "t5-base": {"model_type": "t5", "num_layers": 12, "num_decoder_layers": 12, "d_model": 768,
                "d_kv": 64, "d_ff": 3072, "num_heads": 12, "vocab_size": 32128,
                "relative_attention_num_buckets": 32, "relative_attention_max_distance": 128},
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="gpt2-small", choices=sorted(SHAPES))
    ap.add_argument("--method", "--plugin", dest="method", default="prompt_tuning",
                    choices=["prompt_tuning", "prefix_tuning"])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128, help="text tokens per example")
    ap.add_argument("--virtual", type=int, default=20)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workload", default="lm", choices=["lm", "cls", "generate"],
                    help="lm: every token labelled, fixed length; cls: lengths drawn from "
                         "[seq/4, seq], right-padded to the longest, only the last 2 real "
                         "tokens labelled (encoders: one class each, the head trained too); generate: batch-1 greedy decoding of --new tokens "
                         "after a --seq token prompt, KV cache kept, prompt injected once")
    ap.add_argument("--new", type=int, default=64, help="tokens to generate (generate workload)")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    cfg = SHAPES[a.shape]
    if cfg["model_type"] == "roberta":
        if a.workload != "cls":
            sys.exit(f"--workload {a.workload}: {a.shape} is a classifier; use --workload cls")
        import encoder_baseline  # noqa: E402 (beside this file)
        step, T, real = encoder_baseline.make_step(a, cfg)
        return report_training(a, step, a.batch, T, float(real.sum()))
    if cfg["model_type"] == "t5":
        import seq2seq_baseline  # noqa: E402 (beside this file)
        return seq2seq_baseline.run(a, cfg)
    forward, embed = R.ARCH[cfg["model_type"]]
    W = R.random_weights(cfg, a.seed)
    L, d, H, kvH, V = R.dims(cfg)
    hd = d // H
    B, T, P = a.batch, a.seq, a.virtual
    g = torch.Generator().manual_seed(a.seed + 1)
    ids = torch.randint(0, V, (B, T), generator=g)
    labels = ids.clone()
    real = torch.full((B,), T)
    if a.workload == "cls":
        real = torch.randint(T // 4, T + 1, (B,), generator=g)
        T = int(real.max())
        ids, labels = ids[:, :T], torch.full((B, T), -100)
        for b in range(B):
            labels[b, real[b] - 2:real[b]] = ids[b, real[b] - 2:real[b]]
    pad_mask = (torch.arange(T)[None] < real[:, None]).float()

    if a.method == "prompt_tuning":
        prompt = torch.nn.Parameter(embed(W, cfg, torch.randint(0, V, (P,), generator=g)).clone())
        params = [prompt]
    else:
        enc = 512
        prompt = torch.nn.Parameter(torch.randn(P, d, generator=g) * 0.02)
        mlp = torch.nn.Sequential(torch.nn.Linear(d, enc), torch.nn.Tanh(),
                                  torch.nn.Linear(enc, L * 2 * kvH * hd))
        params = [prompt, *mlp.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-3)

    def step():
        opt.zero_grad(set_to_none=True)
        tok = embed(W, cfg, ids)
        if a.method == "prompt_tuning":
            x = torch.cat((prompt.unsqueeze(0).expand(B, P, d), tok), 1)
            pos = torch.arange(P + T).expand(B, P + T)
            mask = torch.cat((torch.ones(B, P), pad_mask), 1)
            lab = torch.cat((torch.full((B, P), -100), labels), 1)
            logits = forward(W, cfg, x, pos, mask)
        else:
            kv = mlp(prompt).view(P, L, 2, kvH, hd).permute(1, 2, 3, 0, 4)  # L,2,kvH,P,hd
            prefix = [(kv[i, 0].unsqueeze(0).expand(B, kvH, P, hd),
                       kv[i, 1].unsqueeze(0).expand(B, kvH, P, hd)) for i in range(L)]
            pos = torch.arange(P, P + T).expand(B, T)
            mask = torch.cat((torch.ones(B, P), pad_mask), 1)
            lab = labels
            logits = forward(W, cfg, tok, pos, mask, prefix)
        loss = R.causal_lm_loss(logits, lab)
        loss.backward()
        opt.step()
        return loss.item()

    if a.workload == "generate":
        return generate(a, W, cfg, forward, embed, prompt, ids[:1], P, d)
    report_training(a, step, B, T, float(real.sum()))


def report_training(a, step, batch, seq, real_tokens):
    """Runs a.warmup untimed and a.steps timed training steps and prints the JSON line."""
    for _ in range(a.warmup):
        step()
    times = []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(json.dumps({
        "impl": f"pytorch-{torch.__version__}", "shape": a.shape, "method": a.method,
        "batch": batch, "seq": seq, "virtual": a.virtual, "threads": a.threads,
        "step_ms_median": round(med * 1e3, 2), "step_ms_min": round(min(times) * 1e3, 2),
        "workload": a.workload, "tokens_per_s": round(real_tokens / med, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }))


def generate(a, W, cfg, forward, embed, prompt, ids, P, d):
    """Greedy decoding with a KV cache, as transformers' generate() does it:
    one prefill over [virtual tokens + prompt], then one token per step."""
    with torch.no_grad():
        x = torch.cat((prompt.detach()[None], embed(W, cfg, ids)), 1)
        T0 = x.shape[1]
        for _ in range(a.warmup):
            forward(W, cfg, x, torch.arange(T0)[None], torch.ones(1, T0))
        t0 = time.perf_counter()
        cache = []
        logits = forward(W, cfg, x, torch.arange(T0)[None], torch.ones(1, T0), None, cache)
        out = [int(logits[0, -1].argmax())]
        for i in range(a.new - 1):
            T = T0 + i
            new = []
            logits = forward(W, cfg, embed(W, cfg, torch.tensor([[out[-1]]])), torch.tensor([[T]]),
                             torch.ones(1, T + 1), cache, new)
            cache = new
            out.append(int(logits[0, -1].argmax()))
        dt = time.perf_counter() - t0
    print(json.dumps({
        "impl": f"pytorch-{torch.__version__}", "shape": a.shape, "workload": "generate",
        "prompt_tokens": ids.shape[1], "virtual": P, "new_tokens": a.new, "threads": a.threads,
        "tokens_per_s": round(a.new / dt, 2), "first_ids": out[:8],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }))


if __name__ == "__main__":
    main()
