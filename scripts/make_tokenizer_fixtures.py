#!/usr/bin/env python3
"""Writes tests/fixtures/tokenizers/: small tokenizer.json files trained with the Hugging Face
`tokenizers` package, a test text, and the ids and text that package gives for it, which the
Catch2 tests (tests/unit/test_tokenizer.cpp) compare rkv's tokenizer against line by line.

  bytelevel_llama3.json  byte-level BPE, Llama 3's split regex then ByteLevel, merges as [a, b] pairs,
                         ignore_merges, <|begin_of_text|> added by the post-processor
  bytelevel_gpt2.json    byte-level BPE, GPT-2's ByteLevel regex, merges as "a b" strings, no BOS
  spm_prepend.json       SentencePiece-style BPE with byte fallback: Prepend/Replace normalizers and the
                         Replace/ByteFallback/Fuse/Strip decoder chain (Llama 2, Mistral v0.1)
  spm_metaspace.json     the same vocabulary behind the Metaspace pre-tokenizer and decoder (Mistral v0.3)
  bytelevel_nfc.json     Llama 3's structure with Qwen2's NFC normalizer
  bytelevel_split.json   GPT-2's vocabulary behind Split steps that remove tabs (a Regex) and merge "-" with
                         the text before it (a String), then ByteLevel with add_prefix_space
  spm_split.json         the SentencePiece vocabulary behind a Split merging "/" with the text after it and
                         Metaspace with prepend_scheme "always" and split
  text.txt               the test text, one case per line (the cases without a line break)
  <name>.expected.json   per line: ids without and with special tokens, decode with and without skipping
                         special tokens; and decodes of random id sequences (invalid UTF-8 included)

Usage: python3 scripts/make_tokenizer_fixtures.py  (deterministic; needs `tokenizers`)
"""
import json
import os
import random

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from tokenizers import trainers

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "tokenizers")
VOCAB = 1500

LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")

# The committed test text: every line is one case.
TEXT = [
    "Hello world",
    "hello, World! HELLO?",
    "  leading spaces and trailing spaces   ",
    "tabs\tbetween\t\twords\t",
    "runs of     five spaces and\u00a0non-breaking\u00a0spaces",
    "zero\u200bwidth\u200bspaces and a soft\u00adhyphen",
    "I'm sure you'll see they've said it's what we'd do, DON'T YOU'RE",
    "digits 1 12 123 1234 12345 3.14159 2026-12-04 1,000,000",
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00fcber Stra\u00dfe \u00e5ngstr\u00f6m \u0153uvre",
    "e\u0301 (e + combining acute) vs \u00e9, \u212b (angstrom sign) \u1e9b\u0323 \uff21\uff22 \u2460",
    "\u4f60\u597d\uff0c\u4e16\u754c\u3002\u6211\u4eec\u5728\u5b66\u4e60\u5206\u8bcd\u5668\u3002",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3068\u30ab\u30bf\u30ab\u30ca",
    "\ud55c\uad6d\uc5b4 \ubb38\uc7a5\uc744 \ud1a0\ud070\ud654\ud569\ub2c8\ub2e4",
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645 \u0627\u0644\u0639\u0631\u0628\u064a",
    "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd",
    "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440! \u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac",
    "emoji \U0001f600\U0001f44d\U0001f3fd family \U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466 done",
    "flags \U0001f1eb\U0001f1f7\U0001f1ef\U0001f1f5 and \U0001f3f3\ufe0f\u200d\U0001f308",
    "math \u2211 \u221e \u2248 \u00b1 \u00d7 \u00f7 \u221a2",
    "code: def f(x):",
    "    return x**2 + 1  # comment",
    "punctuation!!! ??? ... --- ;;; ::: \"quoted\" 'single'",
    "<|begin_of_text|>special at the start",
    "special <|eot_id|> in the middle<|end_of_text|>",
    "<s>sentencepiece bos then text</s>",
    "text with <s> inside and </s> after",
    "lstrip   <|lstrip|>   and rstrip <|rstrip|>   tokens",
    "single word zork yes, azork no, zork_ no, (zork) yes",
    "normalized foo bar token and foo  bar not",
    "<|endoftext|>gpt2 document separator<|endoftext|>",
    "<unk> literal and <0x41> literal",
    "rare chars \u16a0\u16a2\u16a6 \u2603 \U00010348 \U0001d11e",
    "mixed \u4e2d\u6587English\ud55c\uad6d\uc5b4123\u0639\u0631\u0628\u064a",
    "x",
    " ",
    "",
    "\u2581already has a metaspace \u2581\u2581 twice",
    "CamelCaseWordsAndsnake_case_words and kebab-case-words",
    "paths/like/this -dash- and\t\ttabs/ /",
    "lines\nwith\n\nnewlines \n  indented\r\nand CRLF.\n\n\nend zork\nzork\n",
    "URL https://example.com/path?q=1&r=2#frag email@example.org",
]

WORDS = ("the of and to in is was for on that with as by at from his it an were are which this be has had not "
         "but one they their been its also new first two after who into more other time world year city people "
         "hello model token shard layer cache route value key query attention train loss step data text").split()


def corpus(rng):
    """A small training text: random English-like sentences, then the test lines and variants of them."""
    lines = []
    for _ in range(6000):
        words = [rng.choice(WORDS) for _ in range(rng.randint(3, 14))]
        if rng.random() < 0.3:
            words[0] = words[0].capitalize()
        if rng.random() < 0.2:
            words.insert(rng.randrange(len(words)), str(rng.randint(0, 99999)))
        lines.append(" ".join(words) + rng.choice([".", ",", "!", "?", "", " ..."]))
    for _ in range(20):
        lines.extend(line for line in TEXT if line)
    return lines


def train(model, pre_tokenizer, lines, special, limit_alphabet=None, initial_alphabet=()):
    tok = Tokenizer(model)
    tok.pre_tokenizer = pre_tokenizer
    kwargs = dict(vocab_size=VOCAB, special_tokens=special, initial_alphabet=list(initial_alphabet),
                  show_progress=False)
    if limit_alphabet:
        kwargs["limit_alphabet"] = limit_alphabet
    tok.train_from_iterator(lines, trainers.BpeTrainer(**kwargs))
    return tok


def bytelevel_llama3(lines):
    pre = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    tok = train(models.BPE(), pre, lines, ["<|begin_of_text|>", "<|end_of_text|>"],
                initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.add_special_tokens(["<|eot_id|>", AddedToken("<|lstrip|>", lstrip=True, special=True),
                            AddedToken("<|rstrip|>", rstrip=True, special=True)])
    tok.add_tokens([AddedToken("zork", single_word=True, normalized=False)])
    tok.decoder = decoders.ByteLevel()
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A $B:1",
                                      special_tokens=[("<|begin_of_text|>", bos)])])
    spec = json.loads(tok.to_str())
    spec["model"]["ignore_merges"] = True
    return spec


def bytelevel_gpt2(lines):
    pre = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok = train(models.BPE(), pre, lines, ["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    spec = json.loads(tok.to_str())
    spec["model"]["merges"] = [" ".join(pair) for pair in spec["model"]["merges"]]   # GPT-2's "a b" strings
    return spec


def spm(lines):
    """Trained on Metaspace-split words; served over whole lines as SentencePiece models are."""
    special = ["<unk>", "<s>", "</s>"]
    pre = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=True)
    tok = train(models.BPE(), pre, lines, special, limit_alphabet=120)
    spec = json.loads(tok.to_str())
    trained = sorted(spec["model"]["vocab"].items(), key=lambda kv: kv[1])
    vocab = {t: i for i, t in enumerate(special)}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for t, _ in trained:
        if t not in vocab:
            vocab[t] = len(vocab)
    spec["model"].update(vocab=vocab, byte_fallback=True, fuse_unk=True, unk_token="<unk>")
    spec["added_tokens"] = [dict(id=vocab[t], content=t, single_word=False, lstrip=False, rstrip=False,
                                 normalized=False, special=True) for t in special]
    spec["added_tokens"].append(dict(id=len(vocab), content="foo bar", single_word=False, lstrip=False,
                                     rstrip=False, normalized=True, special=False))
    spec["post_processor"] = json.loads(processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B:1", special_tokens=[("<s>", vocab["<s>"])]).__getstate__())
    prepend = dict(spec)
    prepend["normalizer"] = {"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": "\u2581"}, {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]}
    prepend["pre_tokenizer"] = None
    prepend["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "}, {"type": "ByteFallback"},
        {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    metaspace = dict(spec)
    metaspace["normalizer"] = None
    metaspace["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first",
                                  "split": False}
    metaspace["decoder"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False}
    split = dict(spec)
    split["normalizer"] = None
    split["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"String": "/"}, "behavior": "MergedWithNext", "invert": False},
        {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True}]}
    split["decoder"] = dict(prepend["decoder"])
    return prepend, metaspace, split


def bytelevel_split(gpt2):
    spec = dict(gpt2)
    spec["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": "\\t+"}, "behavior": "Removed", "invert": False},
        {"type": "Split", "pattern": {"String": "-"}, "behavior": "MergedWithPrevious", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}]}
    return spec


def expected(tok, rng):
    lines = []
    for line in TEXT:
        plain = tok.encode(line, add_special_tokens=False).ids
        lines.append(dict(text=line, ids=plain, ids_special=tok.encode(line, add_special_tokens=True).ids,
                          decoded=tok.decode(plain, skip_special_tokens=False),
                          decoded_skip=tok.decode(plain, skip_special_tokens=True)))
    size = tok.get_vocab_size(with_added_tokens=True)
    decodes = []
    for _ in range(40):
        ids = [rng.randrange(size) for _ in range(rng.randint(1, 12))]
        decodes.append(dict(ids=ids, decoded=tok.decode(ids, skip_special_tokens=False),
                            decoded_skip=tok.decode(ids, skip_special_tokens=True)))
    return dict(lines=lines, decodes=decodes)


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = random.Random(14)
    lines = corpus(rng)
    specs = {"bytelevel_llama3": bytelevel_llama3(lines), "bytelevel_gpt2": bytelevel_gpt2(lines)}
    specs["spm_prepend"], specs["spm_metaspace"], specs["spm_split"] = spm(lines)
    specs["bytelevel_split"] = bytelevel_split(specs["bytelevel_gpt2"])
    specs["bytelevel_nfc"] = dict(specs["bytelevel_llama3"], normalizer={"type": "NFC"})
    with open(os.path.join(OUT, "text.txt"), "w", encoding="utf-8", newline="\n") as f:
        f.write("".join(line + "\n" for line in TEXT if "\n" not in line and "\r" not in line))
    for name, spec in specs.items():
        text = json.dumps(spec, ensure_ascii=False, separators=(",", ":"))
        tok = Tokenizer.from_str(text)   # what the package itself makes of the file
        with open(os.path.join(OUT, f"{name}.json"), "w", encoding="utf-8") as f:
            f.write(text)
        with open(os.path.join(OUT, f"{name}.expected.json"), "w", encoding="utf-8") as f:
            json.dump(expected(tok, random.Random(name)), f, ensure_ascii=False, separators=(",", ":"))
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"wrote {len(specs)} tokenizers to {OUT} ({total} bytes)")


if __name__ == "__main__":
    main()
