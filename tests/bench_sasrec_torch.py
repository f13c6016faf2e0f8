#!/usr/bin/env python3
"""tests/bench_sasrec_torch.py - the PyTorch reference for tema's SASRec training step.

    python3 tests/bench_sasrec_torch.py [--device cuda|cpu] [--threads N] [--steps 30] [--bf16] [--json]
                                        [--items-x 29207 --items-y 34886]

Times the training step that `experiments/sasrec-food-kitchen.yaml` runs, written the way a
researcher's PyTorch CDSR code writes it (C2DSR's SASRec layer order: query layer norm,
attention residual on the normed query, post-norm feed-forward, final layer norm), with the
same shapes: batch 256, max_len 15, d 256, 2 blocks, 1 head, feed-forward width d, dropout
0.2, learned positions, cross-entropy over the whole item set of the target's domain at the
last 10 positions, Adam with weight decay 5e-4. Ids are random (this measures speed, not
accuracy). Prints steps/s (the median step) and peak memory; --json: one JSON line; --bf16:
autocast to bf16 (products in bf16, as tema's backend precision: bf16). Not a test; tema's side
is `tema bench experiments/sasrec-food-kitchen.yaml`, and tools/bench-vs-torch runs both.
"""
import argparse
import json
import resource
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


def time_steps(step, dev, warmup, steps):
    """Runs `warmup` then `steps` calls of step() (which returns the loss), each timed on its own
    with the device synchronised; returns the median seconds, the last loss, the peak device
    memory in MiB (None on the CPU) and the process's peak RSS in MiB."""
    for _ in range(warmup):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        loss = step()
        loss.item()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    times.sort()
    k = len(times) // 2
    med = times[k] if len(times) % 2 else 0.5 * (times[k - 1] + times[k])
    peak = torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else None
    return med, loss, peak, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


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
    ap.add_argument("--bf16", action="store_true", help="autocast to bf16")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: PyTorch's default)")
    ap.add_argument("--json", action="store_true", help="print one JSON line")
    ap.add_argument("--keep-denormals", action="store_true",
                    help="leave PyTorch's default (denormal floats kept): on the CPU the softmax gradients of a "
                         "full softmax are ~9%% denormal and MKL's products over them ran 7x slower here")
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(2040)
    if not a.keep_denormals:
        torch.set_flush_denormal(True)  # PyTorch at its best on the CPU (see --keep-denormals)
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
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=a.bf16):
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

    med, loss, peak, rss = time_steps(step, dev, a.warmup, a.steps)
    prec = "bf16" if a.bf16 else ("tf32" if a.tf32 else "fp32")
    if a.json:
        print(json.dumps({"framework": f"pytorch {torch.__version__}", "model": "sasrec", "device": a.device,
                          "precision": prec, "threads": torch.get_num_threads(), "steps": a.steps,
                          "ms_per_step_median": round(1000 * med, 2), "steps_per_s": round(1 / med, 4),
                          "peak_rss_mib": round(rss, 1), "device_mem_mib": None if peak is None else round(peak, 1),
                          "denormals": "kept" if a.keep_denormals else "flushed", "loss_last": round(loss.item(), 6)}))
        return
    print(f"pytorch {torch.__version__} sasrec {a.device} {prec}: {1 / med:.2f} steps/s, "
          f"{1000 * med:.1f} ms/step, batch {a.batch}, items {nx}+{ny}, peak RSS {rss:.0f} MiB"
          f"{'' if peak is None else f', peak GPU memory {peak:.0f} MiB'}, threads {torch.get_num_threads()}")


if __name__ == "__main__":
    main()
