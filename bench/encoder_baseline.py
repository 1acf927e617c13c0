"""The PyTorch baseline for soft-prompt training of an encoder classifier (SEQ_CLS) on
CPU, as PEFT runs RobertaForSequenceClassification, reduced to the same arithmetic in
plain PyTorch (no transformers): frozen fp32 weights, post-norm layers with erf-GELU,
fairseq positions from padding_idx + 1, the head dense -> tanh -> out_proj on h[:, 0]
trained with the prompt (PEFT's modules_to_save), AdamW, mean cross-entropy.

Called by torch_baseline.py for the encoder shapes (roberta-base). PEFT's feeding
(tests/fixtures/hf/README.md): prompt tuning puts the virtual tokens before <s> with
positions padding_idx+1 ... for every position and the head reads the first virtual
token; prefix tuning prepends keys/values in every self-attention and shifts the text's
positions by n."""
import math

import torch
import torch.nn.functional as F


def random_weights(cfg, seed):
    """Seeded weights, distributed as ref_models.random_weights draws them: matrices
    N(0, 0.02), norm gains 1 + N(0, 0.1), biases N(0, 0.02)."""
    g = torch.Generator().manual_seed(seed)
    d, ff, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]

    def n(*shape, std=0.02, mean=0.0):
        return (torch.randn(*shape, generator=g, dtype=torch.float64) * std + mean).float()

    W = {"word": n(V, d), "pos": n(cfg["max_position_embeddings"], d, std=0.01),
         "type": n(1, d), "ln.w": n(d, std=0.1, mean=1.0), "ln.b": n(d)}
    for i in range(cfg["num_hidden_layers"]):
        p = f"{i}."
        for name, (o, k) in {"q": (d, d), "k": (d, d), "v": (d, d), "o": (d, d),
                             "in": (ff, d), "out": (d, ff)}.items():
            W[p + name + ".w"], W[p + name + ".b"] = n(o, k), n(o)
        for ln in ("ln1", "ln2"):
            W[p + ln + ".w"], W[p + ln + ".b"] = n(d, std=0.1, mean=1.0), n(d)
    return W


def encoder(W, cfg, x, pos, key_mask, prefix=None):
    """x: (B, T, d) input embeddings; pos: (B, T) rows of the position table; key_mask:
    (B, P + T) of 0/1 over prefix + tokens; prefix: per layer (k, v) of (B, H, P, hd)."""
    d, H = cfg["hidden_size"], cfg["num_attention_heads"]
    hd, eps = d // H, cfg["layer_norm_eps"]
    B, T, _ = x.shape
    h = F.layer_norm(x + W["pos"][pos] + W["type"][0], (d,), W["ln.w"], W["ln.b"], eps)
    masked = (key_mask[:, None, None, :] == 0)
    for i in range(cfg["num_hidden_layers"]):
        p = f"{i}."

        def lin(t, name):
            return t @ W[p + name + ".w"].T + W[p + name + ".b"]

        q, k, v = (lin(h, n).view(B, T, H, hd).transpose(1, 2) for n in ("q", "k", "v"))
        if prefix is not None:
            k, v = torch.cat((prefix[i][0], k), 2), torch.cat((prefix[i][1], v), 2)
        s = (q @ k.transpose(-1, -2) / math.sqrt(hd)).masked_fill(masked, float("-inf"))
        o = (torch.softmax(s, -1) @ v).transpose(1, 2).reshape(B, T, d)
        h = F.layer_norm(h + lin(o, "o"), (d,), W[p + "ln1.w"], W[p + "ln1.b"], eps)
        f = lin(F.gelu(lin(h, "in")), "out")
        h = F.layer_norm(h + f, (d,), W[p + "ln2.w"], W[p + "ln2.b"], eps)
    return h


def make_step(a, cfg):
    """The training step of the workload, the padded length and the real lengths."""
    W = random_weights(cfg, a.seed)
    d, H, L = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"]
    hd, V, C = d // H, cfg["vocab_size"], cfg["num_labels"]
    first = cfg["pad_token_id"] + 1  # fairseq: position rows start after padding_idx
    B, T, P = a.batch, a.seq, a.virtual
    g = torch.Generator().manual_seed(a.seed + 1)
    real = torch.randint(T // 4, T + 1, (B,), generator=g)
    T = int(real.max())  # right-padded to the longest
    ids = torch.randint(0, V, (B, T), generator=g)
    labels = torch.randint(0, C, (B,), generator=g)
    pad_mask = (torch.arange(T)[None] < real[:, None]).float()

    head = [torch.nn.Parameter(t) for t in (torch.randn(d, d, generator=g) * 0.02,
                                             torch.zeros(d),
                                             torch.randn(C, d, generator=g) * 0.02,
                                             torch.zeros(C))]
    if a.method == "prompt_tuning":
        prompt = torch.nn.Parameter(W["word"][torch.randint(0, V, (P,), generator=g)].clone())
        params = [prompt, *head]
    else:
        enc = 512
        prompt = torch.nn.Parameter(torch.randn(P, d, generator=g) * 0.02)
        mlp = torch.nn.Sequential(torch.nn.Linear(d, enc), torch.nn.Tanh(),
                                  torch.nn.Linear(enc, L * 2 * d))
        params = [prompt, *mlp.parameters(), *head]
    opt = torch.optim.AdamW(params, lr=1e-3)

    def step():
        opt.zero_grad(set_to_none=True)
        tok = W["word"][ids]
        mask = torch.cat((torch.ones(B, P), pad_mask), 1)
        if a.method == "prompt_tuning":
            x = torch.cat((prompt.unsqueeze(0).expand(B, P, d), tok), 1)
            pos = (first + torch.arange(P + T)).expand(B, P + T)
            h = encoder(W, cfg, x, pos, mask)
        else:
            kv = mlp(prompt).view(P, L, 2, H, hd).permute(1, 2, 3, 0, 4)  # L,2,H,P,hd
            prefix = [(kv[i, 0].unsqueeze(0).expand(B, H, P, hd),
                       kv[i, 1].unsqueeze(0).expand(B, H, P, hd)) for i in range(L)]
            pos = (first + P + torch.arange(T)).expand(B, T)
            h = encoder(W, cfg, tok, pos, mask, prefix)
        z = torch.tanh(h[:, 0] @ head[0].T + head[1])
        loss = F.cross_entropy(z @ head[2].T + head[3], labels)
        loss.backward()
        opt.step()
        return loss.item()

    return step, T, real
