"""PyTorch CPU reference for the learner benchmark (bench.mjs).

Builds a llama-architecture model in float32 with random weights and times, in eager mode, the
same three operations the ggml learner's benchmark times: per-token next-token logprobs (forward),
forward+backward of a policy-gradient loss, and an AdamW step with gradient clipping.

Usage: python3 torch_reference.py '<json spec>'   (or the spec on stdin)
Spec keys: vocab, dim, layers, heads, kvHeads, ffn, batch, length, threads, reps, and optionally
rmsEps (1e-5), ropeBase (10000), seed (1).
Prints one JSON line: {forwardTokensPerSecond, forwardBackwardTokensPerSecond, stepMs,
parameters, gradNorm, torch, blas, threads}.
"""

import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        # 1 + small noise, like createTinyLlama's norm weights.
        self.weight = nn.Parameter(1 + 0.1 * torch.randn(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def linear(inner, outer, std=None):
    layer = nn.Linear(inner, outer, bias=False)
    with torch.no_grad():
        layer.weight.normal_(0, std if std is not None else 1 / math.sqrt(inner))
    return layer


def rope_tables(length, head_dim, base):
    inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(length, dtype=torch.float32), inv_freq)  # [T, hd/2]
    return angles.cos(), angles.sin()


def apply_rope(x, cos, sin):
    # x: [B, H, T, hd]; rotates adjacent pairs (x0, x1), (x2, x3), … (the "normal" llama RoPE).
    pairs = x.unflatten(-1, (-1, 2))
    x0, x1 = pairs[..., 0], pairs[..., 1]
    return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).flatten(-2)


class Block(nn.Module):
    def __init__(self, s):
        super().__init__()
        dim, heads, kv_heads = s["dim"], s["heads"], s["kvHeads"]
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, dim // heads
        self.attn_norm = RMSNorm(dim, s["rmsEps"])
        self.q = linear(dim, heads * self.head_dim)
        self.k = linear(dim, kv_heads * self.head_dim)
        self.v = linear(dim, kv_heads * self.head_dim)
        self.o = linear(heads * self.head_dim, dim)
        self.ffn_norm = RMSNorm(dim, s["rmsEps"])
        self.gate = linear(dim, s["ffn"])
        self.up = linear(dim, s["ffn"])
        self.down = linear(s["ffn"], dim)

    def forward(self, x, cos, sin, causal_mask):
        b, t, _ = x.shape
        h = self.attn_norm(x)
        q = self.q(h).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = self.k(h).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v(h).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if self.kv_heads < self.heads:  # GQA: each K/V head serves heads/kvHeads query heads
            group = self.heads // self.kv_heads
            k = k.repeat_interleave(group, dim=1)
            v = v.repeat_interleave(group, dim=1)
        # torch 1.13 has no scaled_dot_product_attention: plain masked softmax attention.
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)
        scores = scores.masked_fill(causal_mask, float("-inf"))
        attn = scores.softmax(-1) @ v  # [B, H, T, hd]
        x = x + self.o(attn.transpose(1, 2).reshape(b, t, -1))
        h = self.ffn_norm(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Llama(nn.Module):
    def __init__(self, s):
        super().__init__()
        self.embed = nn.Embedding(s["vocab"], s["dim"])
        with torch.no_grad():
            self.embed.weight.normal_(0, 1)
        self.blocks = nn.ModuleList(Block(s) for _ in range(s["layers"]))
        self.norm = RMSNorm(s["dim"], s["rmsEps"])
        self.output = linear(s["dim"], s["vocab"], 2 / math.sqrt(s["dim"]))  # untied
        cos, sin = rope_tables(s["length"], s["dim"] // s["heads"], s["ropeBase"])
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        mask = torch.ones(s["length"], s["length"], dtype=torch.bool).triu(1)
        self.register_buffer("causal_mask", mask, persistent=False)

    def forward(self, tokens):
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x, self.cos, self.sin, self.causal_mask)
        return self.output(self.norm(x))  # [B, T, vocab]


def next_token_logprobs(model, tokens):
    """logp[b, t] = log p(tokens[b, t + 1] | tokens[b, ..t]); shape [B, T - 1]."""
    x = model(tokens)[:, :-1]
    m = x.max(-1, keepdim=True).values.detach()
    target = x.gather(-1, tokens[:, 1:].unsqueeze(-1)).squeeze(-1)
    return (target - m.squeeze(-1)) - (x - m).logsumexp(-1)


def mean_seconds(f, reps):
    f()  # warm-up (allocator, thread pool, first-touch of the gradient buffers)
    total = 0.0
    for _ in range(reps):
        t0 = time.perf_counter()
        f()
        total += time.perf_counter() - t0
    return total / reps


def blas_library():
    """The BLAS shared library actually loaded (Linux). Debian's torch calls whatever libblas.so.3
    the alternatives system (or LD_LIBRARY_PATH) resolves to: the netlib reference BLAS by default,
    which is single-threaded and tens of times slower than OpenBLAS or MKL for the matmuls here."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "/" in line}
    except OSError:
        return None
    names = ("libblas", "openblas", "mkl", "blis")
    found = sorted({os.path.realpath(p) for p in paths if any(n in os.path.basename(p) for n in names)})
    return ", ".join(found) or None


def main():
    raw = sys.argv[1] if len(sys.argv) > 1 else sys.stdin.read()
    s = {"rmsEps": 1e-5, "ropeBase": 10000.0, "seed": 1, "reps": 3, "threads": 1, **json.loads(raw)}
    torch.set_num_threads(s["threads"])
    torch.manual_seed(s["seed"])
    model = Llama(s)
    params = list(model.parameters())
    tokens = torch.randint(0, s["vocab"], (s["batch"], s["length"]))
    coef = torch.rand(s["batch"], s["length"] - 1) * 2 - 1
    optimizer = torch.optim.AdamW(params, lr=1e-5)
    n_tokens = s["batch"] * s["length"]

    def forward():
        with torch.no_grad():
            next_token_logprobs(model, tokens)

    def forward_backward():
        # Gradients accumulate over calls, as with the ggml learner's backward().
        loss = -(coef * next_token_logprobs(model, tokens)).sum()
        loss.backward()

    def step():
        # The ggml learner's step() also computes the global norm, clips, and zeroes the gradients.
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=False)

    fwd = mean_seconds(forward, s["reps"])
    fb = mean_seconds(forward_backward, s["reps"])
    grad_norm = math.sqrt(sum(float(p.grad.pow(2).sum()) for p in params))
    st = mean_seconds(step, s["reps"])
    result = {
        "forwardTokensPerSecond": n_tokens / fwd,
        "forwardBackwardTokensPerSecond": n_tokens / fb,
        "stepMs": st * 1000,
        "parameters": sum(p.numel() for p in params),
        "gradNorm": grad_norm,  # before the first step: a check that backward produced gradients
        "torch": torch.__version__,
        "blas": blas_library(),
        "threads": torch.get_num_threads(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
