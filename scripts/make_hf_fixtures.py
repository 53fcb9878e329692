#!/usr/bin/env python3
"""Tiny Hugging Face models of each family rkv reads, saved by transformers, and their logits.

    python3 scripts/make_hf_fixtures.py [--out tests/fixtures/hf]
    python3 scripts/make_hf_fixtures.py --check-export DIR [--convert build/convert_checkpoint]

Writes, for gpt2, llama, mistral and qwen3 (hidden 64, 2 layers, vocabulary 256, random
weights from a fixed seed), two model folders as save_pretrained writes them:
  <family>-f32/     F32 weights (llama: sharded, the others one model.safetensors)
  <family>-<16bit>/ the same weights rounded to BF16 (llama, qwen3) or F16 (gpt2, mistral),
                    sharded for gpt2 and qwen3
and beside each, <folder>.logits.safetensors: "tokens" (1, T) as F32 values, "logits" (1, T, V)
of transformers in float32 on the folder's weights (16-bit ones upcast), and "logits_keep2",
the same under keep-every-2 (layer 1 attends to layer 0's keys and values; DESIGN.md section 1),
computed with the Hugging Face modules through a cache that hands layer 1 layer 0's K/V.
Heads: tied but for llama. Qwen3 has heads of 24 (q_dim 96 != hidden 64, as real Qwen3 sizes).

--check-export DIR: with --convert, first runs `convert_checkpoint FIXTURE DIR/<folder> --hf`
for every fixture (and `--dtype bf16` into DIR/<folder>-bf16 for the BF16 ones, which round-trip
exactly); then loads every DIR/<folder> with AutoModelForCausalLM.from_pretrained, requires no
missing, unexpected or mismatched tensors, and compares its logits to the fixture's.
"""
import argparse
import json
import os
import subprocess
import sys

import torch
from safetensors.torch import load_file, save_file
from transformers import (AutoModelForCausalLM, DynamicCache, GPT2Config, LlamaConfig, MistralConfig,
                          Qwen3Config)

V, C, L, MAXT, T = 256, 64, 2, 32, 8
COMMON = dict(vocab_size=V, hidden_size=C, intermediate_size=32, num_hidden_layers=L, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=MAXT, rope_theta=10000.0, rms_norm_eps=1e-5,
              bos_token_id=1, eos_token_id=2)


def configs():
    """name -> (config, dtype of the 16-bit copy, which folders are sharded)"""
    gpt2 = GPT2Config(vocab_size=V, n_positions=MAXT, n_embd=C, n_layer=L, n_head=4, n_inner=32,
                      layer_norm_epsilon=1e-5, activation_function="gelu_new", bos_token_id=1, eos_token_id=2)
    return {
        "gpt2": (gpt2, torch.float16, {"f16"}),
        "llama": (LlamaConfig(**COMMON, head_dim=16, tie_word_embeddings=False), torch.bfloat16, {"f32"}),
        "mistral": (MistralConfig(**COMMON, head_dim=16, sliding_window=None, tie_word_embeddings=True),
                    torch.float16, set()),
        "qwen3": (Qwen3Config(**COMMON, head_dim=24, tie_word_embeddings=True, use_sliding_window=False),
                  torch.bfloat16, {"bf16"}),
    }


class RouteCache(DynamicCache):
    """A cache whose update for layer l returns the keys and values of layer src[l]."""

    def __init__(self, src, **kwargs):
        super().__init__(**kwargs)
        self.src = src

    def update(self, key_states, value_states, layer_idx, *args, **kwargs):
        keys, values = super().update(key_states, value_states, layer_idx, *args, **kwargs)
        s = self.src[layer_idx]
        return (keys, values) if s == layer_idx else (self.layers[s].keys, self.layers[s].values)


def logits_of(model, tokens):
    """Full-cache and keep-every-2 logits, float32."""
    model = model.float().eval()
    with torch.no_grad():
        full = model(tokens).logits
        keep2 = model(tokens, cache=RouteCache([l - l % 2 for l in range(L)], config=model.config),
                      use_cache=True).logits
    return full.float().contiguous(), keep2.float().contiguous()


def write_expected(path, tokens, model):
    full, keep2 = logits_of(model, tokens)
    save_file({"tokens": tokens.float(), "logits": full, "logits_keep2": keep2}, path)


def make(out):
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(1234)
    tokens = torch.randint(0, V, (1, T))
    for family, (config, half, sharded) in configs().items():
        config._attn_implementation = "eager"
        model = AutoModelForCausalLM.from_config(config)
        with torch.no_grad():   # norms away from 1 and biases away from 0, so a mix-up shows
            for name, p in model.named_parameters():
                if p.dim() == 1:
                    p.add_(0.2 * torch.randn_like(p))
        half_name = {torch.float16: "f16", torch.bfloat16: "bf16"}[half]
        for variant, dtype in (("f32", torch.float32), (half_name, half)):
            folder = f"{family}-{variant}"
            m = model.to(dtype)
            m.save_pretrained(os.path.join(out, folder), max_shard_size="40KB" if variant in sharded else "50MB")
            # The reference: transformers reading the folder back, in float32.
            back = AutoModelForCausalLM.from_pretrained(os.path.join(out, folder), dtype=torch.float32,
                                                        attn_implementation="eager")
            write_expected(os.path.join(out, f"{folder}.logits.safetensors"), tokens, back)
            print(f"{folder}: {sum(p.numel() for p in m.parameters())} parameters")
            model = model.float()


def relative_error(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def check_export(out, fixtures, convert):
    if convert:
        for name in sorted(os.listdir(fixtures)):
            src = os.path.join(fixtures, name)
            if not os.path.isdir(src):
                continue
            subprocess.run([convert, src, os.path.join(out, name), "--hf"], check=True, stdout=subprocess.DEVNULL)
            if name.endswith("-bf16"):
                subprocess.run([convert, src, os.path.join(out, name + "-out-bf16"), "--hf", "--dtype", "bf16"],
                               check=True, stdout=subprocess.DEVNULL)
    worst, failed = 0.0, False
    for name in sorted(os.listdir(out)):
        folder = os.path.join(out, name)
        fixture = name.removesuffix("-out-bf16")
        expected = os.path.join(fixtures, f"{fixture}.logits.safetensors")
        if not os.path.isdir(folder):
            continue
        try:
            model, info = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32,
                                                               attn_implementation="eager", output_loading_info=True)
        except Exception as e:   # noqa: BLE001 (transformers raises several kinds)
            print(f"{name:20} does not load: {e} FAILED")
            failed = True
            continue
        bad = {k: v for k, v in info.items() if v and k != "error_msgs"} | (
            {"error_msgs": info["error_msgs"]} if info.get("error_msgs") else {})
        with open(os.path.join(folder, "config.json")) as f:
            config = json.load(f)
        if not os.path.exists(expected):   # e.g. a trained checkpoint: it must load whole
            failed |= bool(bad)
            print(f"{name:20} {type(model).__name__:20} dtype {config.get('dtype')}: loads "
                  f"{'whole' if not bad else f'with {bad}'}, rkv block {json.dumps(config.get('rkv'))}")
            continue
        want = load_file(expected)
        full, keep2 = logits_of(model, want["tokens"].long())
        e_full, e_keep2 = relative_error(full, want["logits"]), relative_error(keep2, want["logits_keep2"])
        ok = not bad and e_full < 1e-5 and e_keep2 < 1e-5
        failed |= not ok
        worst = max(worst, e_full, e_keep2)
        print(f"{name:20} {type(model).__name__:20} dtype {config.get('dtype')}: logits rel. error {e_full:.2e}, "
              f"keep-every-2 {e_keep2:.2e}{'' if not bad else f', loading: {bad}'} {'ok' if ok else 'FAILED'}")
    print(f"worst relative error {worst:.2e}")
    return 1 if failed else 0


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures", "hf"))
    p.add_argument("--check-export", metavar="DIR", help="reload rkv's output folders in DIR with transformers")
    p.add_argument("--convert", help="convert_checkpoint binary: first convert every fixture into DIR")
    a = p.parse_args()
    if a.check_export:
        os.makedirs(a.check_export, exist_ok=True)
        return check_export(a.check_export, a.out, a.convert)
    make(a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
