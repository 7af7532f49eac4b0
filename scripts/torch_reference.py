#!/usr/bin/env python3
"""PyTorch eager reference for `rankprobe bench --torch`: the same model, batch and
optimizer as a rankprobe run, timed the same way, on the CPU.

Reads one JSON object on stdin: {"config": <rankprobe's resolved RunConfig>, "vocab": N,
"steps": N, "warmup": N, "threads": N}. Prints one JSON object on stdout:
{"tokens_per_s", "step_ms", "peak_rss_mib", "peak_gflops", "torch"}, where peak_gflops is
torch's best [peak_side]^3 f32 matrix product. Exits 3 with a
message on stderr when torch cannot be imported.

The model follows rankprobe's forward pass: token embedding (scaled), pre-norm RMSNorm
blocks with grouped-query causal attention (QK-norm before RoPE, rotate-half RoPE),
squared-ReLU / GELU / SwiGLU feed-forward, final RMSNorm, LM head (tied or not), no
biases, mean cross-entropy. Attention is torch's scaled_dot_product_attention (what an
eager PyTorch user writes). Muon: momentum (Nesterov), Newton-Schulz (quintic or Polar
Express) in f32 on the merged [Q; K; V; O^T] and feed-forward matrices, AdamW on the rest.
"""
import json
import math
import resource
import sys
import time

try:
    import torch
    import torch.nn.functional as F
except ImportError as err:  # the caller turns exit 3 into a "skipped" line
    print(f"torch is not importable ({err}); install it (pip install torch) or set "
          "RANKPROBE_PYTHON to a Python that has it", file=sys.stderr)
    sys.exit(3)

# The exported model's helpers (scripts/rankprobe_model.py; `bench` puts it on the path).
from rankprobe_model import rope, rope_tables, variant  # noqa: E402

POLAR_EXPRESS = [
    (8.156554524902461, -22.48329292557795, 15.878769915207462),
    (4.042929935166739, -2.808917465908714, 0.5000178451051316),
    (3.8916678022926607, -2.772484153217685, 0.5060648178503393),
    (3.285753657755655, -2.3681294933425376, 0.46449024233003106),
    (2.3465413258596377, -1.7097828382687081, 0.42323551169305323),
]


class RMSNorm(torch.nn.Module):
    def __init__(self, dim, eps, learnable=True):
        super().__init__()
        self.eps = eps
        self.weight = torch.nn.Parameter(torch.ones(dim)) if learnable else None

    def forward(self, x):
        y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return y * self.weight if self.weight is not None else y


class Block(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        d, hd = m["d_model"], m["head_dim"]
        self.h, self.kv, self.hd = m["n_heads"], m["n_kv_heads"], hd
        eps = m["norm_eps"]
        self.attn_norm = RMSNorm(d, eps)
        self.wq = torch.nn.Linear(d, self.h * hd, bias=False)
        self.wk = torch.nn.Linear(d, self.kv * hd, bias=False)
        self.wv = torch.nn.Linear(d, self.kv * hd, bias=False)
        self.wo = torch.nn.Linear(self.h * hd, d, bias=False)
        qk, gain = variant(m["qk_norm"])
        self.qk_norm = qk == "RmsNorm"
        if self.qk_norm:
            learnable = gain["gain"] == "Learnable"
            self.q_norm = RMSNorm(hd, eps, learnable)
            self.k_norm = RMSNorm(hd, eps, learnable)
        self.ffn_norm = RMSNorm(d, eps)
        self.activation, _ = variant(m["activation"])
        self.w_up = torch.nn.Linear(d, m["d_ff"], bias=False)
        if self.activation == "SwiGlu":
            self.w_gate = torch.nn.Linear(d, m["d_ff"], bias=False)
        self.w_down = torch.nn.Linear(m["d_ff"], d, bias=False)

    def forward(self, x, cos, sin):
        b, s, _ = x.shape
        n = self.attn_norm(x)
        q = self.wq(n).view(b, s, self.h, self.hd)
        k = self.wk(n).view(b, s, self.kv, self.hd)
        v = self.wv(n).view(b, s, self.kv, self.hd)
        if self.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        group = self.h // self.kv
        if group > 1:
            k = k.repeat_interleave(group, dim=1)
            v = v.repeat_interleave(group, dim=1)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.wo(a.transpose(1, 2).reshape(b, s, self.h * self.hd))
        n = self.ffn_norm(x)
        if self.activation == "SquaredRelu":
            hidden = F.relu(self.w_up(n)).square()
        elif self.activation == "Gelu":
            hidden = F.gelu(self.w_up(n), approximate="tanh")
        else:
            hidden = F.silu(self.w_gate(n)) * self.w_up(n)
        return x + self.w_down(hidden)


class Model(torch.nn.Module):
    def __init__(self, m, vocab, seq):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, m["d_model"])
        scale_name, factor = variant(m["embedding_scale"])
        self.scale = {"SqrtDModel": math.sqrt(m["d_model"]), "Unscaled": 1.0}.get(
            scale_name, factor)
        self.blocks = torch.nn.ModuleList(Block(m) for _ in range(m["n_layers"]))
        self.final_norm = RMSNorm(m["d_model"], m["norm_eps"])
        self.tied = m["tied_embeddings"]
        if not self.tied:
            self.lm_head = torch.nn.Linear(m["d_model"], vocab, bias=False)
        cos, sin = rope_tables(seq, m["head_dim"], m["rope_base"])
        self.register_buffer("cos", cos)
        self.register_buffer("sin", sin)
        for p in self.parameters():
            if p.dim() == 2:
                torch.nn.init.normal_(p, std=m["init_std"])

    def forward(self, tokens):
        x = self.embed(tokens) * self.scale
        for block in self.blocks:
            x = block(x, self.cos, self.sin)
        x = self.final_norm(x)
        head = self.embed.weight if self.tied else self.lm_head.weight
        return x @ head.t()


def newton_schulz(g, name, steps):
    transposed = g.shape[0] > g.shape[1]
    x = g.t() if transposed else g
    if name == "PolarExpress":
        x = x / (x.norm() * 1.01 + 1e-7)
        coefficients = POLAR_EXPRESS[:steps]
    else:
        x = x / (x.norm() + 1e-7)
        coefficients = [(3.4445, -4.7750, 2.0315)] * steps
    for a, b, c in coefficients:
        s = x @ x.t()
        x = a * x + (b * s + c * s @ s) @ x
    return x.t() if transposed else x


class Muon:
    """Muon on each block's merged [Q; K; V; O^T] (or separate projections) and FFN
    matrices."""

    def __init__(self, model, cfg):
        self.cfg = cfg
        self.groups = []
        merged = cfg["matrices"] == "MergedQkvo"
        for block in model.blocks:
            if merged:
                self.groups.append([block.wq.weight, block.wk.weight, block.wv.weight,
                                    block.wo.weight])
            else:
                self.groups += [[block.wq.weight], [block.wk.weight], [block.wv.weight],
                                [block.wo.weight]]
            self.groups.append([block.w_up.weight])
            if hasattr(block, "w_gate"):
                self.groups.append([block.w_gate.weight])
            self.groups.append([block.w_down.weight])
        self.buffers = [None] * len(self.groups)
        self.params = {id(p) for group in self.groups for p in group}

    @torch.no_grad()
    def step(self):
        cfg, beta = self.cfg, self.cfg["momentum"]
        scale_name, factor = variant(cfg["update_scale"])
        for i, group in enumerate(self.groups):
            merged = len(group) == 4
            grads = [p.grad for p in group]
            if merged:  # O^T: wo is [d_model, q width]; stack its transpose
                grads[3] = grads[3].t()
            g = torch.cat(grads) if len(grads) > 1 else grads[0]
            if self.buffers[i] is None:
                self.buffers[i] = torch.zeros_like(g)
            buf = self.buffers[i]
            buf.lerp_(g, 1 - beta)
            update = g.lerp(buf, beta) if cfg["nesterov"] else buf
            o = newton_schulz(update, variant(cfg["variant"])[0], cfg["ns_steps"])
            rows, cols = o.shape
            scale = (max(1.0, rows / cols) ** 0.5 if scale_name == "AspectRatio"
                     else factor * math.sqrt(max(rows, cols)))
            at = 0
            for j, p in enumerate(group):
                n = p.shape[1] if merged and j == 3 else p.shape[0]
                part = o[at:at + n]
                at += n
                if merged and j == 3:
                    part = part.t()
                p.mul_(1 - cfg["lr"] * cfg["weight_decay"])
                p.add_(part, alpha=-cfg["lr"] * scale)


def adamw(params, cfg):
    return torch.optim.AdamW(params, lr=cfg["lr"], betas=tuple(cfg["betas"]), eps=cfg["eps"],
                             weight_decay=cfg["weight_decay"])


def matmul_gflops(side, dtype=torch.float32):
    rows = k = n = side
    a, b = torch.randn(rows, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2.0 * rows * k * n / best / 1e9


def main():
    job = json.load(sys.stdin)
    config, vocab = job["config"], job["vocab"]
    torch.set_num_threads(job["threads"])
    torch.manual_seed(config["seed"])
    m, data = config["model"], config["data"]
    batch, seq = data["batch_size"], data["seq_len"]
    model = Model(m, vocab, seq)
    kind, opt = variant(config["optimizer"])
    if kind == "Muon":
        muon = Muon(model, opt)
        rest = [p for p in model.parameters() if id(p) not in muon.params]
        optimizers = [adamw(rest, opt["adamw"])]
    else:
        muon, optimizers = None, [adamw(model.parameters(), opt)]
    tokens = torch.randint(0, vocab, (batch, seq + 1))
    inputs, targets = tokens[:, :-1], tokens[:, 1:].reshape(-1)

    # `model.precision: Bf16`: what a PyTorch user on the CPU writes, bf16 autocast
    # around the forward pass and the loss (oneDNN's bf16 kernels, AMX where the CPU has
    # it); weights, gradients and optimizer state stay f32.
    bf16 = m.get("precision", "F32") == "Bf16"

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(inputs)
            loss = F.cross_entropy(logits.reshape(-1, vocab), targets)
        loss.backward()
        if muon is not None:
            muon.step()
        for o in optimizers:
            o.step()
        model.zero_grad(set_to_none=True)
        return loss.item()

    for _ in range(job["warmup"]):
        step()
    started = time.perf_counter()
    for _ in range(job["steps"]):
        step()
    seconds = time.perf_counter() - started
    print(json.dumps({
        "bf16_peak_gflops": matmul_gflops(job.get("peak_side", 2048), torch.bfloat16) if bf16 else None,
        "tokens_per_s": job["steps"] * batch * seq / seconds,
        "step_ms": 1e3 * seconds / job["steps"],
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_gflops": matmul_gflops(job.get("peak_side", 2048)),
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
