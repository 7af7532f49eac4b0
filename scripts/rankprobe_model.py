#!/usr/bin/env python3
"""A rankprobe run's trained model in PyTorch, rebuilt exactly from its export.

`rankprobe export STUDY_DIR --to DIR` writes, per run, this file next to
`model.safetensors` (the final weights: f32, matrices [out, in] like torch.nn.Linear,
under rankprobe's tensor paths), `config.json` (every architecture field) and
`eval_batch.safetensors` (the run's validation batch, int32 `inputs` and `targets`).

    python3 DIR/<run>/rankprobe_model.py          # the eval loss next to the recorded one
    import rankprobe_model                        # (with DIR/<run> on sys.path)
    model = rankprobe_model.load("DIR/<run>")     # a torch.nn.Module; model(tokens) -> logits

Needs only torch (safetensors files are read here, without the safetensors package).
The forward pass is rankprobe's: token embedding times `embedding_scale`, pre-norm
RMSNorm blocks with grouped-query causal attention (optional QK-norm over head_dim before
rotate-half RoPE), squared-ReLU / GELU (tanh) / SwiGLU feed-forward, final RMSNorm, LM head
(the embedding when tied), no biases.
"""
import json
import math
import os
import struct
import sys

import torch
import torch.nn.functional as F

DTYPES = {"F32": torch.float32, "I32": torch.int32, "I64": torch.int64}


def read_safetensors(path):
    """{name: tensor} of a safetensors file."""
    with open(path, "rb") as f:
        data = f.read()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + header_len])
    body = data[8 + header_len:]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        dtype = DTYPES[info["dtype"]]
        flat = torch.frombuffer(bytearray(body[start:end]), dtype=dtype)
        tensors[name] = flat.reshape(info["shape"])
    return tensors


def variant(value):
    """A serde enum as JSON: "Name" or {"Name": payload} -> (name, payload)."""
    if isinstance(value, str):
        return value, None
    ((name, payload),) = value.items()
    return name, payload


def rms_norm(x, gain, eps):
    y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return y * gain if gain is not None else y


def rope_tables(seq, head_dim, base):
    half = head_dim // 2
    freq = base ** (-2.0 * (torch.arange(head_dim, dtype=torch.float64) % half) / head_dim)
    angle = torch.arange(seq, dtype=torch.float64)[:, None] * freq[None, :]
    return angle.cos().float(), angle.sin().float()


def rope(x, cos, sin):  # x [batch, heads, seq, head_dim]
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


def parameter(*shape):
    return torch.nn.Parameter(torch.zeros(*shape))


class Block(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        d, hd, ff = m["d_model"], m["head_dim"], m["d_ff"]
        self.heads, self.kv_heads, self.head_dim = m["n_heads"], m["n_kv_heads"], hd
        self.eps = m["norm_eps"]
        self.attn_norm = parameter(d)
        self.wq = parameter(self.heads * hd, d)
        self.wk = parameter(self.kv_heads * hd, d)
        self.wv = parameter(self.kv_heads * hd, d)
        self.wo = parameter(d, self.heads * hd)
        qk_norm, gain = variant(m["qk_norm"])
        self.qk_norm = qk_norm == "RmsNorm"
        self.qk_gains = self.qk_norm and gain["gain"] == "Learnable"
        if self.qk_gains:
            self.q_gain = parameter(hd)
            self.k_gain = parameter(hd)
        self.ffn_norm = parameter(d)
        self.activation, _ = variant(m["activation"])
        self.w_up = parameter(ff, d)
        if self.activation == "SwiGlu":
            self.w_gate = parameter(ff, d)
        self.w_down = parameter(d, ff)
        # An intervention: called with the keys after RoPE, [batch, kv_heads, seq,
        # head_dim]; what it returns is attended to (rankprobe's key-ablation probe).
        self.key_hook = None

    def forward(self, x, cos, sin):
        b, s, _ = x.shape
        n = rms_norm(x, self.attn_norm, self.eps)
        q = (n @ self.wq.t()).view(b, s, self.heads, self.head_dim)
        k = (n @ self.wk.t()).view(b, s, self.kv_heads, self.head_dim)
        v = (n @ self.wv.t()).view(b, s, self.kv_heads, self.head_dim)
        if self.qk_norm:
            q = rms_norm(q, self.q_gain if self.qk_gains else None, self.eps)
            k = rms_norm(k, self.k_gain if self.qk_gains else None, self.eps)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        q, k = rope(q, cos[:s], sin[:s]), rope(k, cos[:s], sin[:s])
        if self.key_hook is not None:
            k = self.key_hook(k)
        group = self.heads // self.kv_heads
        if group > 1:
            k = k.repeat_interleave(group, dim=1)
            v = v.repeat_interleave(group, dim=1)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(self.head_dim)
        causal = torch.ones(s, s, dtype=torch.bool).tril()
        scores = scores.masked_fill(~causal, float("-inf"))
        a = scores.softmax(-1) @ v
        x = x + a.transpose(1, 2).reshape(b, s, self.heads * self.head_dim) @ self.wo.t()
        n = rms_norm(x, self.ffn_norm, self.eps)
        up = n @ self.w_up.t()
        if self.activation == "SquaredRelu":
            hidden = F.relu(up).square()
        elif self.activation == "Gelu":
            hidden = F.gelu(up, approximate="tanh")
        else:
            hidden = F.silu(n @ self.w_gate.t()) * up
        return x + hidden @ self.w_down.t()


class Model(torch.nn.Module):
    """The transformer of `config` (config.json's "model"), its parameters named as in
    rankprobe (`embed`, `blocks.0.wq`, ..., `final_norm`)."""

    def __init__(self, m, vocab, max_seq):
        super().__init__()
        self.eps = m["norm_eps"]
        self.embed = parameter(vocab, m["d_model"])
        scale, factor = variant(m["embedding_scale"])
        self.scale = {"SqrtDModel": math.sqrt(m["d_model"]), "Unscaled": 1.0}.get(scale, factor)
        self.blocks = torch.nn.ModuleList(Block(m) for _ in range(m["n_layers"]))
        self.final_norm = parameter(m["d_model"])
        self.tied = m["tied_embeddings"]
        if not self.tied:
            self.lm_head = parameter(vocab, m["d_model"])
        cos, sin = rope_tables(max_seq, m["head_dim"], m["rope_base"])
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def forward(self, tokens):
        """Logits [batch, seq, vocab] of int tokens [batch, seq]."""
        x = F.embedding(tokens.long(), self.embed) * self.scale
        for block in self.blocks:
            x = block(x, self.cos, self.sin)
        x = rms_norm(x, self.final_norm, self.eps)
        head = self.embed if self.tied else self.lm_head
        return x @ head.t()


def load(run_dir):
    """The exported model in `run_dir`, in eval mode; every tensor of the file must fit."""
    with open(os.path.join(run_dir, "config.json")) as f:
        config = json.load(f)
    model = Model(config["model"], config["vocab"], config["seq_len"])
    weights = read_safetensors(os.path.join(run_dir, "model.safetensors"))
    model.load_state_dict(weights, strict=True)
    return model.eval()


def eval_loss(model, run_dir):
    """Mean next-token cross-entropy on the run's validation batch (what rankprobe records
    as `val` / `loss`)."""
    batch = read_safetensors(os.path.join(run_dir, "eval_batch.safetensors"))
    with torch.no_grad():
        logits = model(batch["inputs"])
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                               batch["targets"].reshape(-1).long()).item()


if __name__ == "__main__":
    here = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "config.json")) as f:
        recorded = json.load(f).get("final_val_loss")
    loss = eval_loss(load(here), here)
    print(json.dumps({"eval_loss": loss, "recorded_final_val_loss": recorded}))
