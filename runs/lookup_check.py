#!/usr/bin/env python3
"""Does a small model learn to look a value up in its context, and is rkv's training the same as
an independent one? (runs/README.md, exp3, "Learnability".)

    python3 runs/lookup_check.py OUT [--steps 400] [--width 128] [--torch]

Writes OUT/lists.txt: documents of nothing but the built-in corpus's key-value lists
("list: wi=89 kf=19 oc=67. kf? 19 wi? 89."), where every queried value is in the context a few
bytes back, the densest lookup signal the corpus has. Trains an 8-layer model (exp3's first
base shape) on it with ./train_rkv (WIDTH, -b 8 -t 256, the default schedule), prints the last
train losses and the greedy continuation of two lists. A model that copies answers " 19" and
" 56"; one that does not answers some fixed digits. With --torch (the venv's torch and
transformers), also trains Hugging Face's LlamaForCausalLM of the same shape, schedule and
batches drawn the same way on the same tokens, and prints the same: the two loss curves should
agree to the noise of the batch order.
"""
import argparse
import glob
import json
import math
import os
import random
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROMPTS = ["list: wi=89 vf=82 iy=46 kf=19 oc=67. kf?", "list: ab=12 cd=34 ef=56 gh=78. ef?"]


def write_lists(path, docs=6000, seed=1):
    """docs documents of 12 lists each, as data/corpus.cpp writes a list (4-8 pairs, 2-4 asked)."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    out = []
    for _ in range(docs):
        lists = []
        for _ in range(12):
            n, keys = rng.randint(4, 8), []
            while len(keys) < n:
                key = rng.choice(letters) + rng.choice(letters)
                if key not in keys:
                    keys.append(key)
            values = {k: "%02d" % rng.randrange(100) for k in keys}
            asked = rng.sample(keys, rng.randint(2, 4))
            lists.append("list:" + "".join(f" {k}={values[k]}" for k in keys) + "." +
                         "".join(f" {k}? {values[k]}" for k in asked) + ".")
        out.append(" ".join(lists))
    with open(path, "w") as f:
        f.write("\n\n".join(out))


def config(width):
    return {"model_type": "llama", "vocab_size": 256, "hidden_size": width, "intermediate_size": 4 * width,
            "num_hidden_layers": 8, "num_attention_heads": 4, "num_key_value_heads": 4, "head_dim": width // 4,
            "max_position_embeddings": 512}


def run_rkv(out, steps, width):
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config(width), f)
    build = os.path.join(ROOT, "build")
    subprocess.run([f"{build}/tokenize_text", "--out", f"{out}/shards", f"{out}/lists.txt"], check=True,
                   stdout=subprocess.DEVNULL)
    log = subprocess.run([f"{build}/train_rkv", "--config", f"{out}/config.json", "--train",
                          f"{out}/shards/text_train_*.bin", "--val", f"{out}/shards/text_val_*.bin", "--steps",
                          str(steps), "-b", "8", "-t", "256", "--val-every", "0", "--p-own", "1", "--out",
                          f"{out}/rkv"], check=True, capture_output=True, text=True).stdout
    losses = [float(line.split("| loss ")[1].split()[0]) for line in log.splitlines() if "| loss " in line]
    answers = []
    for p in PROMPTS:
        gen = subprocess.run([f"{build}/generate_rkv", "--ckpt", f"{out}/rkv", "--prompt", p, "--max-new", "12",
                              "--temperature", "0"], check=True, capture_output=True, text=True).stdout
        answers.append(gen.splitlines()[1][len(p):])
    return losses, answers


def run_torch(out, steps, width):
    """The same model, schedule (warmup 5% of the steps, cosine to 10%), AdamW (0.9, 0.99),
    clipping at 1, on random windows of the same training tokens (rkv shuffles whole windows)."""
    import numpy as np
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    raw = np.fromfile(glob.glob(f"{out}/shards/text_train_*.bin")[0], dtype=np.uint8)
    tokens = np.frombuffer(raw[1024:].tobytes(), dtype=np.uint16).astype(np.int64)  # after llm.c's header
    c = config(width)
    model = LlamaForCausalLM(LlamaConfig(**c, tie_word_embeddings=False))
    # Weight decay 0.1 on the layers' matrices, none on embeddings, head and norms, as rkv's default.
    named = list(model.named_parameters())
    decayed = [p for n, p in named if p.dim() == 2 and "embed" not in n and "lm_head" not in n]
    rest = [p for n, p in named if not (p.dim() == 2 and "embed" not in n and "lm_head" not in n)]
    opt = torch.optim.AdamW([{"params": decayed, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                            lr=2e-3, betas=(0.9, 0.99), eps=1e-8)
    rng = np.random.default_rng(0)
    warmup, B, T, losses = max(1, steps // 20), 8, 256, []
    for s in range(steps):
        lr = 2e-3 * (s + 1) / warmup if s < warmup else \
            2e-4 + 0.5 * (2e-3 - 2e-4) * (1 + math.cos(math.pi * (s - warmup) / max(1, steps - warmup)))
        for g in opt.param_groups:
            g["lr"] = lr
        starts = rng.integers(0, len(tokens) - T, B)
        x = torch.tensor(np.stack([tokens[i:i + T] for i in starts]))
        loss = model(input_ids=x, labels=x).loss  # labels shifted inside
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    answers = []
    for p in PROMPTS:
        ids = torch.tensor([list(p.encode())])
        new = model.generate(ids, max_new_tokens=12, do_sample=False)[0, ids.shape[1]:]
        answers.append(bytes(new.tolist()).decode("latin1"))
    return losses, answers


def report(name, losses, answers):
    tail = losses[-20:]
    print(f"{name}: loss at step 1 {losses[0]:.3f}, mean of the last 20 steps {sum(tail) / len(tail):.3f}")
    for p, a in zip(PROMPTS, answers):
        print(f"  {p!r} -> {a!r}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--torch", action="store_true")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    write_lists(os.path.join(a.out, "lists.txt"))
    report("rkv", *run_rkv(a.out, a.steps, a.width))
    if a.torch:
        report("transformers", *run_torch(a.out, a.steps, a.width))


if __name__ == "__main__":
    sys.exit(main())
