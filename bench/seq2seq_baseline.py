"""The PyTorch baseline for an encoder-decoder (T5, SEQ_2_SEQ_LM prompt tuning), called by
torch_baseline.py for the t5-base shape: the workload of `prompthost bench --shape t5-base
--workload lm`. Frozen fp32 weights (seeded normals), a trainable [virtual, d_model] prompt
before the encoder's input, AdamW. The encoder reads --virtual + --seq tokens, the decoder
max(1, seq/4) tokens (start token first, labels unshifted as T5's), every label scored.

T5 as transformers computes it: RMS layer norm before each sub-layer, no biases, no
1/sqrt(d) attention scale, relative position buckets (bidirectional in the encoder,
causal in the decoder) from each stack's first block, cross-attention without position
bias, relu feed-forward, the tied head after the decoder output x d_model^-0.5."""
import math

import torch

from torch_baseline import report_training


def bucket(rel, bidirectional, buckets, max_distance):
    """transformers' T5Attention._relative_position_bucket."""
    out = torch.zeros_like(rel)
    if bidirectional:
        buckets //= 2
        out += (rel > 0).long() * buckets
        rel = rel.abs()
    else:
        rel = -torch.min(rel, torch.zeros_like(rel))
    exact = buckets // 2
    large = exact + (torch.log(rel.float() / exact) / math.log(max_distance / exact)
                     * (buckets - exact)).long()
    large = torch.min(large, torch.full_like(large, buckets - 1))
    return out + torch.where(rel < exact, rel, large)


def position_bias(table, q_len, k_len, bidirectional, cfg):
    rel = torch.arange(k_len)[None] - torch.arange(q_len)[:, None]
    b = bucket(rel, bidirectional, cfg["relative_attention_num_buckets"],
               cfg["relative_attention_max_distance"])
    return table[b].permute(2, 0, 1)[None]  # [1, heads, q, k]


def rms(x, w, eps=1e-6):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def attention(p, x, kv, bias, heads):
    B, Tq, _ = x.shape
    Tk = kv.shape[1]
    q = (x @ p["q"].T).view(B, Tq, heads, -1).transpose(1, 2)
    k = (kv @ p["k"].T).view(B, Tk, heads, -1).transpose(1, 2)
    v = (kv @ p["v"].T).view(B, Tk, heads, -1).transpose(1, 2)
    s = q @ k.transpose(-1, -2)
    if bias is not None:
        s = s + bias
    o = torch.softmax(s, -1) @ v
    return o.transpose(1, 2).reshape(B, Tq, -1) @ p["o"].T


def random_weights(cfg, seed):
    g = torch.Generator().manual_seed(seed)
    d, f, H, hd = cfg["d_model"], cfg["d_ff"], cfg["num_heads"], cfg["d_kv"]

    def n(*shape, std=0.02):
        return torch.randn(*shape, generator=g) * std

    def norm():
        return 1 + n(d, std=0.1)

    def attn():
        return {"q": n(H * hd, d), "k": n(H * hd, d), "v": n(H * hd, d), "o": n(d, H * hd)}

    def block(cross):
        b = {"ln1": norm(), "self": attn(), "ln2": norm(), "wi": n(f, d), "wo": n(d, f)}
        if cross:
            b.update({"lnx": norm(), "cross": attn()})
        return b

    buckets = cfg["relative_attention_num_buckets"]
    return {"shared": n(cfg["vocab_size"], d),
            "enc": [block(False) for _ in range(cfg["num_layers"])],
            "dec": [block(True) for _ in range(cfg["num_decoder_layers"])],
            "enc_bias": n(buckets, H, std=0.3), "dec_bias": n(buckets, H, std=0.3),
            "enc_ln": norm(), "dec_ln": norm()}


def forward(W, cfg, enc_x, dec_ids):
    H = cfg["num_heads"]
    x = enc_x
    bias = position_bias(W["enc_bias"], x.shape[1], x.shape[1], True, cfg)
    for b in W["enc"]:
        h = rms(x, b["ln1"])
        x = x + attention(b["self"], h, h, bias, H)
        x = x + torch.relu(rms(x, b["ln2"]) @ b["wi"].T) @ b["wo"].T
    enc = rms(x, W["enc_ln"])
    y = W["shared"][dec_ids]
    T = y.shape[1]
    causal = torch.full((T, T), float("-inf")).triu(1)
    bias = position_bias(W["dec_bias"], T, T, False, cfg) + causal
    for b in W["dec"]:
        h = rms(y, b["ln1"])
        y = y + attention(b["self"], h, h, bias, H)
        y = y + attention(b["cross"], rms(y, b["lnx"]), enc, None, H)
        y = y + torch.relu(rms(y, b["ln2"]) @ b["wi"].T) @ b["wo"].T
    return (rms(y, W["dec_ln"]) * cfg["d_model"] ** -0.5) @ W["shared"].T


def run(a, cfg):
    if a.workload != "lm" or a.method != "prompt_tuning":
        raise SystemExit("t5-base is benchmarked with --workload lm --method prompt_tuning")
    W = random_weights(cfg, a.seed)
    B, S, P, V = a.batch, a.seq, a.virtual, cfg["vocab_size"]
    Td = max(1, S // 4)
    g = torch.Generator().manual_seed(a.seed + 1)
    ids = torch.randint(0, V, (B, S), generator=g)
    labels = torch.randint(0, V, (B, Td), generator=g)
    dec_ids = torch.cat((torch.zeros(B, 1, dtype=torch.long), labels[:, :-1]), 1)
    prompt = torch.nn.Parameter(W["shared"][torch.randint(0, V, (P,), generator=g)].clone())
    opt = torch.optim.AdamW([prompt], lr=1e-3)

    def step():
        opt.zero_grad(set_to_none=True)
        x = torch.cat((prompt.unsqueeze(0).expand(B, P, -1), W["shared"][ids]), 1)
        logits = forward(W, cfg, x, dec_ids)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), labels.reshape(-1))
        loss.backward()
        opt.step()

    report_training(a, step, B, S, B * (S + Td))
