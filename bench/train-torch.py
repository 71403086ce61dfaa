# PyTorch CPU baseline for bench/train.ts: the same GPT (src/model/weights.ts layout: [in, out]
# matrices, fused qkv, output tied to wte, tanh GELU, pre-LN with eps 1e-5) trained with the
# same AdamW settings (decay on 2-D tensors only) on the same token batch, on 1 and 2 threads.
# argv: weights dir, settings json ({vocab, context, dModel, layers, heads, batch, length,
# dropout, lr, beta1, beta2, eps, weightDecay, warmup, steps}), tokens .bin (int64 [batch,
# length + 1]). Prints one JSON line.
import json, math, resource, sys, time
import numpy as np
import torch
import torch.nn.functional as F

wdir, cfg_json, tokens_file = sys.argv[1], sys.argv[2], sys.argv[3]
cfg = json.loads(cfg_json)
entries = json.load(open(f"{wdir}/weights.json"))
flat = np.fromfile(f"{wdir}/weights.bin", dtype="<f4")
initial = {e["name"]: flat[e["offset"]:e["offset"] + int(np.prod(e["shape"]))].reshape(e["shape"]).copy() for e in entries}
d, H, L = cfg["dModel"], cfg["heads"], cfg["layers"]
hd = d // H
dropout = cfg["dropout"] or [0.0] * L


def fresh_params():
    return {name: torch.tensor(value, requires_grad=True) for name, value in initial.items()}


def loss_fn(W, ids, train):
    inputs, targets = ids[:, :-1], ids[:, 1:]
    B, S = inputs.shape
    x = W["wte"][inputs] + W["wpe"][:S]
    causal = torch.ones(S, S, dtype=torch.bool).tril()
    for i in range(L):
        p = f"h.{i}"
        rate = dropout[i] if train else 0.0
        h = F.layer_norm(x, (d,), W[f"{p}.ln1.gamma"], W[f"{p}.ln1.beta"], 1e-5)
        qkv = h @ W[f"{p}.attn.wqkv"] + W[f"{p}.attn.bqkv"]
        q, k, v = qkv.split(d, dim=-1)
        q, k, v = (t.view(B, S, H, hd).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
        att = att.masked_fill(~causal, float("-inf")).softmax(dim=-1)
        a = (att @ v).transpose(1, 2).reshape(B, S, d)
        x = x + F.dropout(a @ W[f"{p}.attn.wo"] + W[f"{p}.attn.bo"], rate, train)
        h = F.layer_norm(x, (d,), W[f"{p}.ln2.gamma"], W[f"{p}.ln2.beta"], 1e-5)
        m = F.gelu(h @ W[f"{p}.mlp.w1"] + W[f"{p}.mlp.b1"], approximate="tanh")
        x = x + F.dropout(m @ W[f"{p}.mlp.w2"] + W[f"{p}.mlp.b2"], rate, train)
    x = F.layer_norm(x, (d,), W["lnf.gamma"], W["lnf.beta"], 1e-5)
    logits = x @ W["wte"].T  # tied output projection
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def optimizer(W):
    # As src/train/adamw.ts: decoupled weight decay on matrices and embeddings only.
    decay = [t for t in W.values() if t.dim() >= 2]
    rest = [t for t in W.values() if t.dim() < 2]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg["weightDecay"]}, {"params": rest, "weight_decay": 0.0}],
        lr=cfg["lr"], betas=(cfg["beta1"], cfg["beta2"]), eps=cfg["eps"],
    )


ids = torch.from_numpy(np.fromfile(tokens_file, dtype="<i8").reshape(cfg["batch"], cfg["length"] + 1))
tokens_per_step = ids.shape[0] * (ids.shape[1] - 1)
out = {"torch": torch.__version__, "initialLoss": None, "threads": []}
with torch.no_grad():
    out["initialLoss"] = loss_fn(fresh_params(), ids, False).item()
torch.manual_seed(0)
for threads in (1, 2):
    torch.set_num_threads(threads)
    W = fresh_params()
    opt = optimizer(W)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(W, ids, True)
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(cfg["warmup"]):
        step()
    t0 = time.perf_counter()
    last = None
    for _ in range(cfg["steps"]):
        last = step()
    dt = time.perf_counter() - t0
    out["threads"].append({
        "threads": threads,
        "tokensPerSec": cfg["steps"] * tokens_per_step / dt,
        "stepMs": 1000 * dt / cfg["steps"],
        "finalLoss": last,
    })
out["peakRssMB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux
print(json.dumps(out))
