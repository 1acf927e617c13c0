"""PyTorch replica of the demo's prefix-tuning reference run
(models/demo/reference-results.jsonl): prefix tuning on the `topic` task of the demo
model, then exact match (greedy label) and rank accuracy (most likely of the six labels,
by summed log-likelihood of label + EOS) on its test set.

Why it exists: the reference file records one seed. This script reruns the recorded
settings for any seed, so PromptHost's spread over seeds can be compared with
PyTorch's spread over seeds instead of with a single draw.

    /usr/bin/python3 bench/reference/train_topic.py --seeds 0 1 2

It also replays a PromptHost run: --init-from takes PromptHost's initial parameters and
--order prompthost its shuffle, so the same run can be compared step by step (--fixture
writes the first steps in float64 for tests/unit/test_trainer_parity.cpp).

Settings (the reference file's for prefix tuning): AdamW (weight decay 0), lr 1e-3,
batch 16, 3 epochs, linear warmup 20 steps then linear decay to 0 (transformers'
get_linear_schedule_with_warmup), gradient clip 1.0, float32, 2 threads; the sequence
is BOS + tokens(input + output) + EOS with only the output tokens and EOS scored.
Prefix tuning: 20 virtual tokens, projection with hidden 128, embedding N(0,1),
Linear layers PyTorch's default init (PEFT's PrefixEncoder).
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import ref_methods as M  # noqa: E402
import ref_models as R  # noqa: E402
import safetensors_io  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(HERE))
DEMO = os.path.join(ROOT, "models", "demo")


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def encode(sp, bos, eos, inp, out):
    """BOS + tokens(input + output) + EOS; labels -100 except output tokens and EOS.
    (On the topic task tokens(input + output) = tokens(input) + tokens(output) for every
    example, which is how PromptHost encodes them.)"""
    prompt = sp.encode(inp)
    full = sp.encode(inp + out)
    if full[: len(prompt)] != prompt:
        raise ValueError(f"the input's tokens are not a prefix of input + output's: {inp!r}")
    n_prompt = len(prompt)
    ids = [bos] + full + [eos]
    labels = [-100] * (1 + n_prompt) + ids[1 + n_prompt:]
    return ids, labels


class Prefix(torch.nn.Module):
    """PEFT's PrefixEncoder's parameters, created in its order (so a seed draws the same
    initialisation); the arithmetic is ref_methods.prefix_tuning's."""

    def __init__(self, n, kv_dim, hidden, flat_dim, projection):
        super().__init__()
        self.projection = projection
        if projection:
            self.embedding = torch.nn.Embedding(n, kv_dim)
            self.transform = torch.nn.Sequential(torch.nn.Linear(kv_dim, hidden), torch.nn.Tanh(),
                                                 torch.nn.Linear(hidden, flat_dim))
        else:
            self.embedding = torch.nn.Embedding(n, flat_dim)

    def forward(self):
        return M.prefix_tuning(dict(self.named_parameters()), self.projection)


M64 = (1 << 64) - 1


def _mix(z):  # splitmix64's finaliser, as host/trainer/batching.cpp
    z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & M64
    z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & M64
    return z ^ (z >> 31)


def prompthost_epoch_order(n, seed, epoch):
    """PromptHost's shuffle (host/trainer/batching.cpp epoch_order), bit for bit."""
    order = list(range(n))
    state = _mix((seed * 0x9e3779b97f4a7c15 + epoch + 1) & M64)
    for i in range(n - 1, 0, -1):
        state = _mix((state + 0x9e3779b97f4a7c15) & M64)
        j = state % (i + 1)
        order[i], order[j] = order[j], order[i]
    return order


def batch_tensors(items, pad):
    S = max(len(ids) for ids, _ in items)
    ids = torch.full((len(items), S), pad, dtype=torch.long)
    lab = torch.full((len(items), S), -100, dtype=torch.long)
    mask = torch.zeros((len(items), S), dtype=torch.long)
    for b, (i, l) in enumerate(items):
        ids[b, : len(i)] = torch.tensor(i)
        lab[b, : len(l)] = torch.tensor(l)
        mask[b, : len(i)] = 1
    return ids, mask, lab


def forward(W, cfg, prefix_module, ids, mask):
    L, d, H, kvH, V = R.dims(cfg)
    hd = d // H
    B, S = ids.shape
    flat = prefix_module()
    n = flat.shape[0]
    prefix = M.prefix_to_layers(flat, L, kvH, hd, B)
    pos = torch.arange(n, n + S).expand(B, S)
    key_mask = torch.cat((torch.ones(B, n, dtype=mask.dtype), mask), 1)
    return R.llama_forward(W, cfg, R.llama_embed(W, cfg, ids), pos, key_mask, prefix)


def sequence_nll(logits, labels):
    lp = F.log_softmax(logits[:, :-1].double(), -1)
    tgt = labels[:, 1:]
    m = tgt != -100
    picked = lp.gather(-1, tgt.clamp(min=0)[..., None])[..., 0]
    return -(picked * m).sum(-1)


@torch.no_grad()
def evaluate(W, cfg, prefix_module, sp, bos, eos, test):
    labels = sorted({ex["output"] for ex in test})
    exact = rank = 0
    for ex in test:
        ids = [bos] + sp.encode(ex["input"])
        want = len(sp.encode(ex["output"]))
        out = []
        for _ in range(want + 4):  # greedy, no cache: the sequences are short
            t = torch.tensor([ids + out])
            nxt = int(forward(W, cfg, prefix_module, t, torch.ones_like(t))[0, -1].argmax())
            if nxt == eos:
                break
            out.append(nxt)
        exact += sp.decode(out).strip() == ex["output"].strip()
        items = [encode(sp, bos, eos, ex["input"], c) for c in labels]
        i, m, l = batch_tensors(items, 0)
        nll = sequence_nll(forward(W, cfg, prefix_module, i, m), l)
        rank += labels[int(nll.argmin())] == ex["output"]
    return exact / len(test), rank / len(test)


def train(args, seed, W, cfg, sp, train_set, test, trace=None):
    """Trains one seed; with a trace list, stops after args.fixture_steps steps and returns
    (module, trace) instead of evaluating."""
    bos, eos = sp.bos_id(), sp.eos_id()
    L, d, H, kvH, V = R.dims(cfg)
    kv_dim = kvH * (d // H)
    torch.manual_seed(seed)
    prefix_module = Prefix(args.num_virtual_tokens, kv_dim, args.encoder_hidden_size,
                           L * 2 * kv_dim, args.projection).to(args.dtype)
    if args.init_from:  # a PromptHost run's training_state.safetensors: its param.* tensors
        arrays, _ = safetensors_io.load(args.init_from)
        with torch.no_grad():
            for name, p in prefix_module.named_parameters():
                p.copy_(torch.from_numpy(arrays["param." + name]).to(p.dtype))
    params = [p for p in prefix_module.parameters()]
    n_params = sum(p.numel() for p in params)
    encoded = [encode(sp, bos, eos, ex["input"], ex["output"]) for ex in train_set]
    steps_per_epoch = math.ceil(len(encoded) / args.batch_size)
    total = steps_per_epoch * args.epochs
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    warm = args.warmup_steps
    # transformers' get_linear_schedule_with_warmup (PromptHost's too): step 0 has lr 0
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: s / max(1, warm) if s < warm else max(0.0, (total - s) / max(1, total - warm)))
    g = torch.Generator().manual_seed(seed)
    t0 = time.time()
    step = 0
    for epoch in range(args.epochs):
        if args.order == "prompthost":
            order = prompthost_epoch_order(len(encoded), seed, epoch)
        else:
            order = torch.randperm(len(encoded), generator=g).tolist()
        for b in range(0, len(order), args.batch_size):
            ids, mask, lab = batch_tensors([encoded[i] for i in order[b: b + args.batch_size]], 0)
            logits = forward(W, cfg, prefix_module, ids, mask)
            loss = R.causal_lm_loss(logits, lab)
            opt.zero_grad()
            loss.backward()
            if trace is not None:  # the norm before clipping, as PromptHost's metrics log it
                norm = torch.sqrt(sum((p.grad.double() ** 2).sum() for p in params))
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            if trace is not None:
                trace.append({"step": step + 1, "loss": loss.item(), "grad_norm": norm.item(),
                              "lr": sched.get_last_lr()[0]})
            opt.step()
            sched.step()
            step += 1
            if trace is not None and step == args.fixture_steps:
                return prefix_module, trace
            if step % 50 == 0 or step == total:
                print(f"  seed {seed} step {step}/{total} loss {loss.item():.4f}", flush=True)
    seconds = time.time() - t0
    if args.save:
        torch.save(prefix_module.state_dict(), f"{args.save}.seed{seed}.pt")
    em, ra = evaluate(W, cfg, prefix_module, sp, bos, eos, test)
    return {"method": "prefix_tuning", "seed": seed, "exact_match": round(em, 4),
            "rank_accuracy": round(ra, 4), "trainable_params": n_params,
            "train_seconds": round(seconds, 1), "projection": args.projection, "lr": args.lr}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--warmup-steps", type=int, default=20)
    ap.add_argument("--num-virtual-tokens", type=int, default=20)
    ap.add_argument("--encoder-hidden-size", type=int, default=128)
    ap.add_argument("--no-projection", dest="projection", action="store_false")
    ap.add_argument("--demo", default=DEMO, help="the demo folder (hf/, tasks/)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--init-from", help="start from the param.* tensors of a PromptHost "
                    "training_state.safetensors (e.g. a run stopped after one step at --lr 0)")
    ap.add_argument("--order", choices=["torch", "prompthost"], default="torch",
                    help="the shuffle: torch.randperm, or PromptHost's (same seed, same batches)")
    ap.add_argument("--fixture", help="write the first --fixture-steps steps (loss, gradient "
                    "norm, lr per step; the parameters after them) to this safetensors file, "
                    "in float64, and stop: tests/unit/test_trainer_parity.cpp reads it")
    ap.add_argument("--fixture-steps", type=int, default=20)
    ap.add_argument("--save", help="save the trained parameters to SAVE.seedN.pt")
    ap.add_argument("--out", help="append one JSON line per seed to this file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=os.path.join(args.demo, "hf", "tokenizer.model"))
    with open(os.path.join(args.demo, "hf", "config.json")) as f:
        cfg = json.load(f)
    arrays, _ = safetensors_io.load(os.path.join(args.demo, "hf", "model.safetensors"))
    W = {k: torch.from_numpy(v).float() for k, v in arrays.items()}
    train_set = read_jsonl(os.path.join(args.demo, "tasks", "topic", "train.jsonl"))
    test = read_jsonl(os.path.join(args.demo, "tasks", "topic", "test.jsonl"))
    args.dtype = torch.float64 if args.fixture else torch.float32
    W = {k: v.to(args.dtype) for k, v in W.items()}
    if args.fixture:
        module, trace = train(args, args.seeds[0], W, cfg, sp, train_set, test, trace=[])
        tensors = {"param." + k: v.detach().numpy() for k, v in module.state_dict().items()}
        settings = {k: v for k, v in vars(args).items() if k not in ("dtype", "demo", "out", "save", "fixture")}
        safetensors_io.save(args.fixture, tensors, {"steps": json.dumps(trace),
                                                    "settings": json.dumps(settings)})
        print(f"{args.fixture}: {len(trace)} steps, last loss {trace[-1]['loss']:.6f}")
        return
    for seed in args.seeds:
        r = train(args, seed, W, cfg, sp, train_set, test)
        print(json.dumps(r), flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
