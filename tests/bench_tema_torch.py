#!/usr/bin/env python3
"""tests/bench_tema_torch.py - the PyTorch reference for tema's TEMA-LLM training step at the paper's size.

    python3 tests/bench_tema_torch.py [--device cpu|cuda] [--threads N] [--steps 5] [--bf16] [--json]

Times the training step of `experiments/paper/table2.yaml`'s TEMA-LLM row (`tema bench
experiments/paper/table2.yaml --index 18`), written the way a PyTorch user writes it, with the
same shapes: batch 256, max_len 15, d = 256, three encoders (ID embedding; text: a linear map of
384-wide MiniLM features; tag: a linear map of 79-wide tag weights), each item table
L2-normalised and scaled by sqrt(d); one 2-block SASRec stack (tests/bench_sasrec_torch.py's
Block, dropout 0.3) per (modality, sequence) with sequences S^X, S^Y and S^{X+Y}: nine stacks;
per stream, cosine / 0.07 logits over the target domain's items (full softmax, as PyTorch
users write it: the [rows, items] logits are materialised), log-probabilities mixed over the
nine streams with fixed weights (alpha x sequence weight), the last 10 positions; Adam with
weight decay 5e-4. Simplified against tema (same FLOP, not the same numbers): the S^X / S^Y
stacks run over random [256, 15] sequences of their domain instead of the aligned
sub-sequences. Ids and features are random (this measures speed, not accuracy). Prints
steps/s and peak memory (with --json: one JSON line).
"""
import argparse
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_sasrec_torch import Block, time_steps  # noqa: E402


class Stack(torch.nn.Module):
    def __init__(self, d, max_len, blocks, dropout):
        super().__init__()
        self.pos = torch.nn.Embedding(max_len, d)
        self.drop = torch.nn.Dropout(dropout)
        self.blocks = torch.nn.ModuleList([Block(d, dropout) for _ in range(blocks)])
        self.lnf = torch.nn.LayerNorm(d, eps=1e-8)

    def forward(self, x):
        L = x.shape[1]
        x = self.drop(x + self.pos(torch.arange(L, device=x.device)))
        causal = torch.triu(torch.ones(L, L, dtype=torch.bool, device=x.device), 1)
        for b in self.blocks:
            x = b(x, causal)
        return self.lnf(x)


class TemaLLM(torch.nn.Module):
    def __init__(self, n_items, d, max_len, text_dim, n_tags):
        super().__init__()
        self.d = d
        self.id = torch.nn.Embedding(n_items, d)
        self.text = torch.nn.Linear(text_dim, d)
        self.tag = torch.nn.Linear(n_tags, d)
        self.stacks = torch.nn.ModuleList([Stack(d, max_len, 2, 0.3) for _ in range(9)])  # [modality * 3 + seq]

    def tables(self, text_feat, tag_w):
        return [F.normalize(t, dim=-1) for t in (self.id.weight, self.text(text_feat), self.tag(tag_w))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: PyTorch's default)")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--items-x", type=int, default=29207)
    ap.add_argument("--items-y", type=int, default=34886)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--max-len", type=int, default=15)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--positions", type=int, default=10)
    ap.add_argument("--bf16", action="store_true", help="autocast to bf16 (products in bf16, as tema's precision: bf16)")
    ap.add_argument("--json", action="store_true", help="print one JSON line")
    ap.add_argument("--keep-denormals", action="store_true",
                    help="leave PyTorch's default (denormal floats kept): on the CPU the softmax gradients of a "
                         "full softmax are ~9%% denormal and MKL's products over them ran 7x slower here")
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    if not a.keep_denormals:
        torch.set_flush_denormal(True)  # PyTorch at its best on the CPU (see --keep-denormals)
    dev = torch.device(a.device)
    nx, ny, d, B, L, P = a.items_x, a.items_y, a.dim, a.batch, a.max_len, a.positions
    n = nx + ny
    model = TemaLLM(n, d, L, 384, 79).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=5e-4)
    text_feat = F.normalize(torch.randn(n, 384), dim=-1).to(dev)
    tag_w = torch.rand(n, 79).to(dev)
    seqs = [torch.randint(0, n, (B, L)), torch.randint(0, nx, (B, L)), torch.randint(nx, n, (B, L))]
    seqs = [s.to(dev) for s in seqs]
    half = B // 2
    tgt = torch.cat([torch.randint(0, nx, (half, P)), torch.randint(nx, n, (B - half, P))]).to(dev)
    alpha = [0.5, 0.25, 0.25]  # id 0.4, text 0.2, tag 1 - 0.4 - 0.2 - 0.2 (image), renormalised without image
    seq_w = [0.1, 1.0, 0.3]   # merged, own domain, other domain (lambda_2, 1, lambda_1), normalised below
    logw = torch.tensor([[math.log(alpha[m] * seq_w[q] / sum(seq_w)) for q in range(3)] for m in range(3)]).flatten()

    def domain_logp(h, table, lo, hi, t):
        z = F.normalize(h, dim=-1) @ table[lo:hi].t() / 0.07
        return torch.gather(F.log_softmax(z, dim=-1), 1, (t - lo).unsqueeze(1)).squeeze(1)

    def step():
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=a.bf16):
            tables = model.tables(text_feat, tag_w)
            parts = []
            for m in range(3):
                for q in range(3):
                    x = tables[m][seqs[q]] * math.sqrt(d)
                    h = model.stacks[m * 3 + q](x)[:, -P:, :].float()
                    lx = domain_logp(h[:half].reshape(-1, d), tables[m].float(), 0, nx, tgt[:half].reshape(-1))
                    ly = domain_logp(h[half:].reshape(-1, d), tables[m].float(), nx, n, tgt[half:].reshape(-1))
                    parts.append(torch.cat([lx, ly]))
            logp = torch.logsumexp(torch.stack(parts) + logw.to(dev).unsqueeze(1), dim=0)
            loss = -logp.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    med, loss, gpu, rss = time_steps(step, dev, a.warmup, a.steps)
    r = {"framework": f"pytorch {torch.__version__}", "model": "tema-llm", "device": a.device,
         "precision": "bf16" if a.bf16 else "fp32", "threads": torch.get_num_threads(), "steps": a.steps,
         "ms_per_step_median": round(1000 * med, 2), "steps_per_s": round(1 / med, 4),
         "peak_rss_mib": round(rss, 1), "device_mem_mib": None if gpu is None else round(gpu, 1),
         "denormals": "kept" if a.keep_denormals else "flushed", "loss_last": round(loss.item(), 6)}
    if a.json:
        print(json.dumps(r))
    else:
        print(f"pytorch {torch.__version__} tema-llm {a.device} {r['precision']}: {r['steps_per_s']:.3f} steps/s, "
              f"{r['ms_per_step_median']:.0f} ms/step, peak RSS {rss:.0f} MiB, threads {r['threads']}")


if __name__ == "__main__":
    main()
