#!/usr/bin/env python3
"""tests/bench_sasrec_torch.py - the PyTorch reference for tema's SASRec training step.

    python3 tests/bench_sasrec_torch.py [--device cuda|cpu] [--steps 30] [--items-x 29207 --items-y 34886]

Times the training step that `experiments/sasrec-food-kitchen.yaml` runs, written the way a
researcher's PyTorch CDSR code writes it (C2DSR's SASRec layer order: query layer norm,
attention residual on the normed query, post-norm feed-forward, final layer norm), with the
same shapes: batch 256, max_len 15, d 256, 2 blocks, 1 head, feed-forward width d, dropout
0.2, learned positions, cross-entropy over the whole item set of the target's domain at the
last 10 positions, Adam with weight decay 5e-4. Ids are random (this measures speed, not
accuracy). Prints steps/s and peak memory. Not a test; tema's side is
`tema run experiments/sasrec-food-kitchen.yaml` (its log prints steps/s).
"""
import argparse
import time

import torch
import torch.nn.functional as F


class Block(torch.nn.Module):
    def __init__(self, d, dropout):
        super().__init__()
        self.ln1 = torch.nn.LayerNorm(d, eps=1e-8)
        self.att = torch.nn.MultiheadAttention(d, 1, dropout=dropout, batch_first=True)
        self.ln2 = torch.nn.LayerNorm(d, eps=1e-8)
        self.ff = torch.nn.Sequential(torch.nn.Linear(d, d), torch.nn.GELU(approximate="tanh"),
                                      torch.nn.Dropout(dropout), torch.nn.Linear(d, d), torch.nn.Dropout(dropout))

    def forward(self, x, causal):
        q = self.ln1(x)
        o, _ = self.att(q, x, x, attn_mask=causal, need_weights=False)
        x = self.ln2(q + o)
        return x + self.ff(x)


class SASRec(torch.nn.Module):
    def __init__(self, n_items, d, max_len, blocks, dropout):
        super().__init__()
        self.items = torch.nn.Embedding(n_items + 1, d, padding_idx=n_items)
        self.pos = torch.nn.Embedding(max_len, d)
        self.drop = torch.nn.Dropout(dropout)
        self.blocks = torch.nn.ModuleList([Block(d, dropout) for _ in range(blocks)])
        self.lnf = torch.nn.LayerNorm(d, eps=1e-8)

    def forward(self, seq):
        L = seq.shape[1]
        pos = torch.arange(L, device=seq.device)
        x = self.drop(self.items(seq) * (self.items.embedding_dim ** 0.5) + self.pos(pos))
        causal = torch.triu(torch.ones(L, L, dtype=torch.bool, device=seq.device), 1)
        for b in self.blocks:
            x = b(x, causal)
        return self.lnf(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--items-x", type=int, default=29207)
    ap.add_argument("--items-y", type=int, default=34886)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--max-len", type=int, default=15)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--positions", type=int, default=10)
    ap.add_argument("--tf32", action="store_true", help="allow TF32 matmuls (PyTorch's default is off)")
    a = ap.parse_args()
    torch.manual_seed(2040)
    torch.backends.cuda.matmul.allow_tf32 = a.tf32
    torch.backends.cudnn.allow_tf32 = a.tf32
    dev = torch.device(a.device)
    nx, ny = a.items_x, a.items_y
    model = SASRec(nx + ny, a.dim, a.max_len, 2, 0.2).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=5e-4)
    seq = torch.randint(0, nx + ny, (a.batch, a.max_len), device=dev)
    # half the targets in each domain, as in the mixed sequences of food-kitchen
    tgt = torch.cat([torch.randint(0, nx, (a.batch // 2, a.positions)),
                     torch.randint(nx, nx + ny, (a.batch - a.batch // 2, a.positions))]).to(dev)

    def step():
        h = model(seq)[:, -a.positions:, :]
        hx, hy = h[: a.batch // 2].reshape(-1, a.dim), h[a.batch // 2:].reshape(-1, a.dim)
        w = model.items.weight
        lx = F.cross_entropy(hx @ w[:nx].t(), tgt[: a.batch // 2].reshape(-1), reduction="sum")
        ly = F.cross_entropy(hy @ w[nx:nx + ny].t(), tgt[a.batch // 2:].reshape(-1) - nx, reduction="sum")
        loss = (lx + ly) / tgt.numel()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    for _ in range(a.warmup):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        loss = step()
    loss.item()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else float("nan")
    print(f"pytorch {torch.__version__} sasrec {a.device}{' tf32' if a.tf32 else ''}: {a.steps / dt:.2f} steps/s, "
          f"{1000 * dt / a.steps:.1f} ms/step, batch {a.batch}, items {nx}+{ny}, peak GPU memory {peak:.0f} MiB, "
          f"threads {torch.get_num_threads()}")


if __name__ == "__main__":
    main()
