# PyTorch CPU baseline for bench/eval.ts: the same GPT (src/model/weights.ts layout) scoring the
# same token batch. argv: weights dir, model config json, tokens .bin (int64 [batch, seq]),
# seconds per measurement. Prints one JSON line.
import json, sys, time, math
import numpy as np
import torch

wdir, cfg_json, tokens_file, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
cfg = json.loads(cfg_json)
entries = json.load(open(f"{wdir}/weights.json"))
flat = np.fromfile(f"{wdir}/weights.bin", dtype="<f4")
W = {e["name"]: torch.from_numpy(flat[e["offset"]:e["offset"] + int(np.prod(e["shape"]))].reshape(e["shape"]).copy()) for e in entries}
d, H, L = cfg["dModel"], cfg["heads"], cfg["layers"]
hd = d // H

def forward(ids):
    B, S = ids.shape
    x = W["wte"][ids] + W["wpe"][:S]
    causal = torch.ones(S, S, dtype=torch.bool).tril()
    for i in range(L):
        p = f"h.{i}"
        h = torch.nn.functional.layer_norm(x, (d,), W[f"{p}.ln1.gamma"], W[f"{p}.ln1.beta"], 1e-5)
        qkv = h @ W[f"{p}.attn.wqkv"] + W[f"{p}.attn.bqkv"]
        q, k, v = qkv.split(d, dim=-1)
        q, k, v = (t.view(B, S, H, hd).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
        att = att.masked_fill(~causal, float("-inf")).softmax(dim=-1)
        a = att @ v
        x = x + a.transpose(1, 2).reshape(B, S, d) @ W[f"{p}.attn.wo"] + W[f"{p}.attn.bo"]
        h = torch.nn.functional.layer_norm(x, (d,), W[f"{p}.ln2.gamma"], W[f"{p}.ln2.beta"], 1e-5)
        m = torch.nn.functional.gelu(h @ W[f"{p}.mlp.w1"] + W[f"{p}.mlp.b1"], approximate="tanh")
        x = x + m @ W[f"{p}.mlp.w2"] + W[f"{p}.mlp.b2"]
    x = torch.nn.functional.layer_norm(x, (d,), W["lnf.gamma"], W["lnf.beta"], 1e-5)
    return x @ W["wte"].T

def score(ids):
    logits = forward(ids[:, :-1])
    lp = torch.log_softmax(logits.float(), dim=-1)
    return -lp.gather(-1, ids[:, 1:, None]).sum().item()

ids_np = np.fromfile(tokens_file, dtype="<i8").reshape(cfg["batch"], cfg["seq"])
ids = torch.from_numpy(ids_np)
out = {"torch": torch.__version__, "nll": None}
with torch.inference_mode():
    out["nll"] = score(ids)
    for threads in (1, 2):
        torch.set_num_threads(threads)
        score(ids)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            score(ids)
            n += 1
        dt = time.perf_counter() - t0
        out[f"tokensPerSec{threads}"] = n * ids.shape[0] * (ids.shape[1] - 1) / dt
print(json.dumps(out))
