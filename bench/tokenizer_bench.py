#!/usr/bin/env python3
"""The Python side of bench/tokenizer_bench.sh.

  prepare DIR MB   writes DIR/text.txt (about MB megabytes: this machine's license texts and Python
                   sources, then the fixtures' multilingual test text; the same on the same machine)
                   and trains, with the `tokenizers` package, DIR/bytelevel.json (Llama 3 structure)
                   and DIR/spm.json (Llama 2 structure) of 16000 tokens each, as
                   scripts/make_tokenizer_fixtures.py builds its small ones
  encode TOK TEXT  encodes TEXT's lines with encode_batch_fast and prints "MB/s <number>"; the number of
                   threads is the caller's RAYON_NUM_THREADS / TOKENIZERS_PARALLELISM
  ids TOK TEXT     prints each line's ids as tokenize_text --ids does (to compare them)
"""
import glob
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "scripts"))


def prepare(out, mb):
    import make_tokenizer_fixtures as fx
    from tokenizers import Tokenizer
    os.makedirs(out, exist_ok=True)
    sources = sorted(glob.glob("/usr/share/common-licenses/*")) + sorted(glob.glob("/usr/lib/python3*/**/*.py",
                                                                                 recursive=True))
    parts, size = [], 0
    for path in sources:
        if size >= mb * 1e6 * 0.95:
            break
        try:
            with open(path, encoding="utf-8") as f:
                t = f.read()
        except (UnicodeDecodeError, OSError, IsADirectoryError):
            continue
        parts.append(t)
        size += len(t.encode())
    multilingual = "\n".join(fx.TEXT) + "\n"
    while size < mb * 1e6:
        parts.append(multilingual)
        size += len(multilingual.encode())
    text = "".join(parts)
    with open(os.path.join(out, "text.txt"), "w", encoding="utf-8") as f:
        f.write(text)
    lines = text.splitlines()[:200000]
    fx.VOCAB = 16000
    specs = {"bytelevel": fx.bytelevel_llama3(lines), "spm": fx.spm(lines)[0]}
    for name, spec in specs.items():
        s = json.dumps(spec, ensure_ascii=False)
        Tokenizer.from_str(s)
        with open(os.path.join(out, f"{name}.json"), "w", encoding="utf-8") as f:
            f.write(s)
    print(f"{out}/text.txt: {len(text.encode()) / 1e6:.1f} MB, {len(text.splitlines())} lines")


def lines_of(path):
    """The lines tokenize_text --ids reads (split at \n only; no empty last line) and the file's size."""
    with open(path, "rb") as f:
        data = f.read()
    lines = data.decode("utf-8", errors="replace").split("\n")
    if data.endswith(b"\n"):
        lines.pop()
    return lines, len(data)


def encode(tok_path, text_path):
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(tok_path)
    lines, nbytes = lines_of(text_path)
    # encode_batch_fast: ids without offsets, the package's fastest path (encode_batch is slower here).
    batch = getattr(tok, "encode_batch_fast", tok.encode_batch)
    t0 = time.perf_counter()
    batch(lines, add_special_tokens=False)
    s = time.perf_counter() - t0
    print(f"MB/s {nbytes / 1e6 / s:.2f}")


def ids(tok_path, text_path):
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(tok_path)
    lines, _ = lines_of(text_path)
    out = sys.stdout
    for enc in tok.encode_batch(lines, add_special_tokens=False):
        out.write(" ".join(map(str, enc.ids)) + "\n")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "prepare":
        prepare(sys.argv[2], float(sys.argv[3]))
    elif cmd == "encode":
        encode(sys.argv[2], sys.argv[3])
    elif cmd == "ids":
        ids(sys.argv[2], sys.argv[3])
    else:
        sys.exit(f"unknown command {cmd}")
