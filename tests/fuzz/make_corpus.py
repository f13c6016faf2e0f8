#!/usr/bin/env python3
"""tests/fuzz/make_corpus.py - writes the seed corpora of tests/fuzz/corpus/ (run from the
checkout root). Small valid files of each real format, plus a few near misses; the params
seed comes from the harness itself (see fuzz_params.c). Rerun after changing a format."""
import gzip, io, json, os, struct, tarfile

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(parser, name, data):
    d = os.path.join(root, parser)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def config():
    src = os.path.join(os.path.dirname(root), "..", "..", "experiments")
    for name in ("quickstart.yaml", "sasrec-food-kitchen.yaml", "c2dsr-food-kitchen.yaml"):
        with open(os.path.join(src, name)) as f:
            put("config", name, f.read())
    put("config", "overrides.yaml", "name: o\ndataset: {path: synthetic}\nmodel: {encoders: [id], attention: gru}\n"
        "#set train.epochs=2\n#set model.encoders.0.dim=8\n#set loss=sampled_softmax")
    put("config", "tagger.yaml", "name: t\ndataset: {path: synthetic}\nmodel:\n  encoders: [id, {plugin: tag, dim: 16}]\n"
        "  attention: single\n  tagger: {plugin: lexical, vocab_dir: experiments/tags}\n"
        "  tag_select: {plugin: topr, r: 3}\n  tag_repr: weighted\n")


# A consistent bundle: 3 X items, 2 Y items (global ids 3, 4), 3 users.
BUNDLE = {
    "Alist.txt": "97\tB00C7MGHVA\t0\n108\tB004YV80O4\t1\n118\tB00934WBRO\t2\n",
    "Blist.txt": "8677\tB00006JSUA\t0\n8736\tB001N07KUE\t1\n",
    "userlist.txt": "food-kitchen:O:414\t0\nfood-kitchen:O:1665\t1\nfood-kitchen:O:1818\t2\n",
    "traindata_new.txt": "0\t0\t0|1262304000|2010-01-01 08:00:00|\t3|1262390400|2010-01-02 08:00:00|\t1|1262476800|2010-01-03 08:00:00|\n"
                         "1\t1\t4|1262304000|2010-01-01 08:00:00|\t2|1262304000|2010-01-01 08:00:00|\n",
    "validdata_new.txt": "2\t2\t1|1262304000|2010-01-01 08:00:00|\t4|1262390400|2010-01-02 08:00:00|\n",
    "testdata_new.txt": "2\t3\t1|1262304000|2010-01-01 08:00:00|\t4|1262390400|2010-01-02 08:00:00|\t0|1262476800|2010-01-03 08:00:00|\n",
    "items.tsv": "item\tdomain\tasin\ttitle\tcategories\n0\tX\tB00C7MGHVA\tLipton K-Cup Packs, Soothe Green Tea, 24 Count\t\n"
                 "3\tY\tB00006JSUA\tChef's Knife\tKitchen|Knives\n",
}
ORDER = ["Alist.txt", "Blist.txt", "userlist.txt", "traindata_new.txt", "validdata_new.txt", "testdata_new.txt",
         "items.tsv"]


def dataset():
    parts = [BUNDLE[n] for n in ORDER]
    put("dataset", "folder", "\x00" + "----\n".join(parts))
    put("dataset", "archive", "\x01" + "----\n".join(parts))
    put("dataset", "folder_no_titles_crlf", "\x00" + "----\n".join(p.replace("\n", "\r\n") for p in parts[:6]))
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w",
                                                                            format=tarfile.PAX_FORMAT) as t:
        for n in ORDER:
            data = BUNDLE[n].encode()
            info = tarfile.TarInfo("toy/" + n)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    put("dataset", "raw.tar.gz", b"\x02" + buf.getvalue())
    # uncompressed: mutations reach the tar headers themselves (libarchive reads plain tar too)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for n in ORDER[:6]:
            data = BUNDLE[n].encode()
            info = tarfile.TarInfo("toy/" + n)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    put("dataset", "raw.tar", b"\x02" + buf.getvalue()[:6 * 1024 + 1024])  # members, then the two zero blocks


def npy_bytes(shape, values, dtype="<f4", version=1, fortran=False):
    hdr = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (dtype, fortran, str(tuple(shape)))
    pre = 10 if version == 1 else 12
    pad = 64 - (pre + len(hdr) + 1) % 64
    hdr = (hdr + " " * pad + "\n").encode()
    head = b"\x93NUMPY" + bytes([version, 0]) + (struct.pack("<H", len(hdr)) if version == 1 else struct.pack("<I", len(hdr)))
    return head + hdr + struct.pack("<%d%s" % (len(values), "f" if dtype == "<f4" else "d"), *values)


def npy():
    put("npy", "f4_2x3.npy", npy_bytes((2, 3), [0.5, -1, 2, 3, 4.25, 5]))
    put("npy", "f8_3x1_v2.npy", npy_bytes((3, 1), [1.0, 2.0, 1e30], dtype="<f8", version=2))
    put("npy", "empty_0x4.npy", npy_bytes((0, 4), []))
    put("npy", "fortran.npy", npy_bytes((1, 2), [1, 2], fortran=True))


def envelope(content, finish="stop", tokens=None):
    reply = {"id": "chatcmpl-1", "object": "chat.completion", "model": "SmolLM2-135M-Instruct",
             "choices": [{"index": 0, "finish_reason": finish, "message": {"role": "assistant", "content": content}}]}
    if tokens is not None:
        reply["usage"] = {"prompt_tokens": 100, "completion_tokens": tokens, "total_tokens": 100 + tokens}
    return json.dumps(reply)


def openai():
    # setup byte: bit 0 score job, bits 1-2 items - 1, bits 3-4 choose
    vote = json.dumps({"tags": [{"tag": "Coffee", "score": 0.9}, {"tag": "green tea", "score": "80%"}, "snack"]})
    put("openai", "vote", b"\x00" + envelope(vote, tokens=42).encode())
    put("openai", "vote_think", b"\x00" + envelope("<think>a list like [1]</think>```json\n" + vote + "\n```").encode())
    score = json.dumps({"items": [{"id": 1, "tags": {"coffee": 80, "green_tea": "20", "gluten-free": 150}},
                                  {"id": 2, "tags": [{"name": "snack", "score": 55}]}]})
    put("openai", "score2", bytes([1 | 1 << 1]) + envelope(score, tokens=77).encode())
    keyed = json.dumps({"1": ["coffee", "snack"]})
    put("openai", "score_choose", bytes([1 | 2 << 3]) + envelope("Here: " + keyed + " done.").encode())
    put("openai", "cut_off", b"\x01" + envelope('{"items": [{"id": 1, "tags": {"cof', finish="length").encode())


def tag_vocab():
    put("tag_vocab", "food.yaml", "domain: food\ndescription: tags\ntags:\n  - name: coffee\n"
        "    synonyms: [espresso, ground coffee, dark roast, whole bean]\n  - name: tea\n"
        "    synonyms: [green tea, tea bag, earl grey]\n  - cookies\n  - name: Kids' snacks\n    synonyms: k-cup\n")
    put("tag_vocab", "flow.yaml", "tags: [{name: chocolate, synonyms: [cocoa, 'caf\u00e9 au lait']}, snack, {name: x}]\n")


def safetensors_bytes(tensors, meta=None):
    header, blob = {}, b""
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(blob), len(blob) + len(data)]}
        blob += data
    if meta:
        header["__metadata__"] = meta
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + blob


def safetensors():
    put("safetensors", "f32.safetensors", safetensors_bytes(
        {"embeddings.word_embeddings.weight": ("F32", [2, 3], struct.pack("<6f", 1, 2, 3, 4, 5, 6)),
         "pooler.dense.bias": ("F32", [2], struct.pack("<2f", 0.5, -0.5))}, {"format": "pt"}))
    put("safetensors", "half.safetensors", safetensors_bytes(
        {"a": ("F16", [2, 2], struct.pack("<4H", 0x3C00, 0xC000, 0x7BFF, 0x0001)),
         "b": ("BF16", [3], struct.pack("<3H", 0x3F80, 0x4000, 0x0000)),
         "c": ("F64", [1], struct.pack("<d", 3.25)), "s": ("I64", [], struct.pack("<q", 7))}))


def wordpiece():
    put("wordpiece", "title", "Organic Green Tea Bags, 100 Count")
    put("wordpiece", "accents", "Caf\u00e9 au lait \u2014 K-Cups [SEP] Kids' cookies \u4e2d\u6587 \u0391\u03b1")
    vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\ngreen\n##s\ntea\nbag\n"
    put("wordpiece", "vocab_and_text", vocab + "\x00" + "green teas bags [MASK]")


def csv():
    put("csv", "scale_curve.csv", "scale,items,loss,ms_per_step,epoch_train_s\n1,64093,full,799.1,51.9\n"
        "1,64093,sampled,292.0,19.0\n4,256372,full,2329.4,151.4\n")
    put("csv", "quoted.csv", 'name,"a, b",c\r\n"x ""quoted"" y",1,\n\n"multi\nline",2.5e3,-1\r\n')
    put("csv", "ragged.csv", "a,b\n1\n\"open,2\n")


for make in (config, dataset, npy, openai, tag_vocab, safetensors, wordpiece, csv):
    make()
