#!/usr/bin/env python3
"""Writes tests/fixtures/rope/: what transformers computes, for rkv's config and RoPE tests.

  inv_freq.json   RoPE inverse frequencies transformers derives from real configs (Llama 3.1 and
                  3.2's llama3 scaling, a linear scaling, none), each config given in both
                  layouts transformers reads: 4.x (top-level rope_theta, rope_scaling) and 5.x
                  (rope_parameters).
  <model>/        tiny random models saved with save_pretrained (model.safetensors in F32 and
                  config.json in the installed transformers' layout), config.v4.json the same
                  config in the 4.x layout, and logits.json: token ids (B, T) and the logits
                  (B, T, V) transformers computes, at the full cache and at keep-every-2 (odd
                  layers attend to the keys and values of the layer below, DESIGN.md section 1),
                  the latter with the model's own Hugging Face modules run layer by layer.

Run with an environment that has torch and transformers (make test does not need them):
  python3 scripts/make_rope_fixtures.py [--out tests/fixtures/rope]
"""
import argparse
import copy
import json
import math
import os
import shutil
import tempfile

import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

SEED = 1234
B, T = 2, 8

# Configs as published (sizes and RoPE), whose frequencies the C++ test recomputes.
LLAMA31_8B = {
    "model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": 128256, "hidden_size": 4096,
    "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
    "hidden_act": "silu", "max_position_embeddings": 131072, "rms_norm_eps": 1e-05, "tie_word_embeddings": False,
    "rope_theta": 500000.0, "attention_bias": False, "mlp_bias": False, "bos_token_id": 128000,
    "eos_token_id": 128001, "initializer_range": 0.02, "pretraining_tp": 1, "use_cache": True,
    "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
}
LLAMA32_1B = dict(LLAMA31_8B, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, head_dim=64,
                  tie_word_embeddings=True,
                  rope_scaling={"factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                "original_max_position_embeddings": 8192, "rope_type": "llama3"})
LINEAR = dict(LLAMA31_8B, rope_theta=10000.0, max_position_embeddings=16384,
              rope_scaling={"type": "linear", "factor": 4.0})
QWEN3_8B = {
    "model_type": "qwen3", "architectures": ["Qwen3ForCausalLM"], "vocab_size": 151936, "hidden_size": 4096,
    "intermediate_size": 12288, "num_hidden_layers": 36, "num_attention_heads": 32, "num_key_value_heads": 8,
    "head_dim": 128, "hidden_act": "silu", "max_position_embeddings": 40960, "rms_norm_eps": 1e-06,
    "tie_word_embeddings": False, "rope_theta": 1000000, "rope_scaling": None, "attention_bias": False,
    "use_sliding_window": False, "sliding_window": None, "max_window_layers": 36, "torch_dtype": "bfloat16",
}
MISTRAL_7B = {
    "model_type": "mistral", "architectures": ["MistralForCausalLM"], "vocab_size": 32768, "hidden_size": 4096,
    "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
    "head_dim": 128, "hidden_act": "silu", "max_position_embeddings": 32768, "rms_norm_eps": 1e-05,
    "tie_word_embeddings": False, "rope_theta": 1000000.0, "sliding_window": None, "torch_dtype": "bfloat16",
}

# Tiny models, small enough to commit (about 100 KB each): every band of llama3's scaling holds a
# pair of their 8-wide heads (wavelengths 2 pi 10^i: 6.3 kept, 63 interpolated, 628 and 6283
# divided, against 128 / 4 and 128 / 1), Qwen3's q width differs from hidden_size, Mistral runs a
# linear scaling.
TINY = {
    "hidden_size": 32, "intermediate_size": 32, "num_hidden_layers": 3, "num_attention_heads": 4,
    "num_key_value_heads": 2, "vocab_size": 64, "max_position_embeddings": 1024, "rms_norm_eps": 1e-6,
}
TINY_MODELS = {
    "llama3": dict(TINY, model_type="llama", head_dim=8, tie_word_embeddings=False, rope_theta=10000.0,
                   rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                 "high_freq_factor": 4.0, "original_max_position_embeddings": 128}),
    "qwen3": dict(TINY, model_type="qwen3", head_dim=12, tie_word_embeddings=True, rope_theta=10000.0),
    "mistral": dict(TINY, model_type="mistral", head_dim=8, num_hidden_layers=2, tie_word_embeddings=False,
                    rope_theta=10000.0, sliding_window=None, rope_scaling={"rope_type": "linear", "factor": 2.0}),
}

ROPE_KEYS = ("rope_type", "type", "factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")


def layout_v4(cfg):
    """Top-level rope_theta and rope_scaling (null when unscaled); no rope_parameters."""
    out = {k: v for k, v in cfg.items() if k not in ("rope_parameters", "dtype")}
    if "dtype" in cfg:
        out["torch_dtype"] = cfg["dtype"]
    params = cfg.get("rope_parameters")
    if params is not None:
        out["rope_theta"] = params["rope_theta"]
        rope_type = params.get("rope_type", "default")
        out["rope_scaling"] = None if rope_type == "default" else {
            k: v for k, v in params.items() if k in ROPE_KEYS}
    return out


def layout_v5(cfg):
    """rope_parameters holding rope_theta, rope_type and the scaling fields; no top-level rope keys."""
    out = {k: v for k, v in cfg.items() if k not in ("rope_theta", "rope_scaling")}
    scaling = dict(cfg.get("rope_scaling") or {})
    if "type" in scaling:
        scaling["rope_type"] = scaling.pop("type")
    params = {"rope_type": "default"}
    params.update(scaling)
    params["rope_theta"] = cfg.get("rope_theta", cfg.get("rope_parameters", {}).get("rope_theta"))
    out["rope_parameters"] = params
    return out


def load_config(cfg):
    """AutoConfig.from_pretrained on a folder holding cfg as config.json."""
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f)
        return AutoConfig.from_pretrained(d)


def inv_freq_of(config):
    rope_type = config.rope_parameters.get("rope_type", "default")
    if rope_type == "default":
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        theta = config.rope_parameters["rope_theta"]
        return 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    return ROPE_INIT_FUNCTIONS[rope_type](config, "cpu")[0]


def write_inv_freq(out):
    cases = []
    for name, cfg in [("llama3.1-8b", LLAMA31_8B), ("llama3.2-1b", LLAMA32_1B), ("linear", LINEAR),
                      ("qwen3-8b", QWEN3_8B), ("mistral-7b", MISTRAL_7B)]:
        v4, v5 = cfg, layout_v5(cfg)   # the published configs are in the 4.x layout
        f4, f5 = inv_freq_of(load_config(v4)), inv_freq_of(load_config(v5))
        assert torch.equal(f4, f5), name
        cases.append({"name": name, "config_v4": v4, "config_v5": v5, "inv_freq": [float(x) for x in f4]})
    with open(os.path.join(out, "inv_freq.json"), "w") as f:
        json.dump({"transformers": transformers.__version__, "cases": cases}, f, indent=1)
        f.write("\n")


def repeat_kv(x, groups):
    return x if groups == 1 else x.repeat_interleave(groups, dim=1)


def routed_logits(model, ids, kv_src):
    """The model's logits with layer l attending to the keys and values of layer kv_src[l], run
    through its own Hugging Face modules: embedding, rotary embedding, each layer's norms,
    projections, QK-norm, apply_rotary_pos_emb and MLP, attention as sdpa."""
    modeling = __import__(type(model).__module__, fromlist=["apply_rotary_pos_emb"])
    inner = model.model
    h = inner.embed_tokens(ids)
    pos = torch.arange(ids.shape[1]).unsqueeze(0)
    cos, sin = inner.rotary_emb(h, pos)
    kv = {}
    for l, layer in enumerate(inner.layers):
        attn = layer.self_attn
        x = layer.input_layernorm(h)
        Bn, Tn, _ = x.shape
        hs = attn.head_dim
        q = attn.q_proj(x).view(Bn, Tn, -1, hs)
        if hasattr(attn, "q_norm"):
            q = attn.q_norm(q)
        q = q.transpose(1, 2)
        if kv_src[l] == l:
            k = attn.k_proj(x).view(Bn, Tn, -1, hs)
            if hasattr(attn, "k_norm"):
                k = attn.k_norm(k)
            k = k.transpose(1, 2)
            v = attn.v_proj(x).view(Bn, Tn, -1, hs).transpose(1, 2)
            q, k = modeling.apply_rotary_pos_emb(q, k, cos, sin)
            kv[l] = (k, v)
        else:
            q, _ = modeling.apply_rotary_pos_emb(q, q, cos, sin)
        k, v = kv[kv_src[l]]
        groups = q.shape[1] // k.shape[1]
        a = torch.nn.functional.scaled_dot_product_attention(q, repeat_kv(k, groups), repeat_kv(v, groups),
                                                             is_causal=True, scale=attn.scaling)
        h = h + attn.o_proj(a.transpose(1, 2).reshape(Bn, Tn, -1))
        h = h + layer.mlp(layer.post_attention_layernorm(h))
    return model.lm_head(inner.norm(h))


def rounded(t):
    return [float(f"{x:.9g}") for x in t.flatten().tolist()]


def write_model(out, name, cfg):
    torch.manual_seed(SEED)
    config = load_config(layout_v5(cfg))
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    # O(1) weights, so that every path through the model carries signal at 1e-5.
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if "norm" in pname:
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) / math.sqrt(p.shape[-1] if "embed" not in pname else 1.0))
    d = os.path.join(out, name)
    shutil.rmtree(d, ignore_errors=True)
    model.save_pretrained(d, safe_serialization=True)
    for extra in os.listdir(d):
        if extra not in ("config.json", "model.safetensors"):
            os.remove(os.path.join(d, extra))
    with open(os.path.join(d, "config.json")) as f:
        saved = json.load(f)
    with open(os.path.join(d, "config.v4.json"), "w") as f:
        json.dump(layout_v4(saved), f, indent=2)
        f.write("\n")

    # Reloaded from either layout, the same model.
    reloaded = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
    v4_dir = tempfile.mkdtemp()
    shutil.copy(os.path.join(d, "model.safetensors"), v4_dir)
    shutil.copy(os.path.join(d, "config.v4.json"), os.path.join(v4_dir, "config.json"))
    reloaded_v4 = AutoModelForCausalLM.from_pretrained(v4_dir, dtype=torch.float32).eval()
    shutil.rmtree(v4_dir)

    g = torch.Generator().manual_seed(SEED + 1)
    ids = torch.randint(0, cfg["vocab_size"], (B, T), generator=g)
    L = cfg["num_hidden_layers"]
    with torch.no_grad():
        full = model(ids).logits
        assert torch.equal(full, reloaded(ids).logits), name
        assert torch.equal(full, reloaded_v4(ids).logits), name
        own = routed_logits(model, ids, list(range(L)))
        keep2 = routed_logits(model, ids, [l - l % 2 for l in range(L)])
    err = ((own - full).abs().max() / full.abs().max()).item()
    assert err < 1e-6, f"{name}: the layer-by-layer run differs from the model's forward by {err}"
    diff = ((keep2 - full).abs().max() / full.abs().max()).item()
    assert diff > 1e-3, f"{name}: keep-every-2 changes nothing ({diff})"
    with open(os.path.join(d, "logits.json"), "w") as f:
        json.dump({"transformers": transformers.__version__, "B": B, "T": T, "V": cfg["vocab_size"],
                   "tokens": ids.flatten().tolist(), "logits": rounded(full), "logits_keep_every_2": rounded(keep2)},
                  f)
        f.write("\n")
    sizes = {f: os.path.getsize(os.path.join(d, f)) for f in sorted(os.listdir(d))}
    print(f"{name}: {sizes}; layer-by-layer vs forward {err:.1e}; keep-every-2 moves logits by {diff:.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "rope"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    write_inv_freq(args.out)
    for name, cfg in TINY_MODELS.items():
        write_model(args.out, name, cfg)


if __name__ == "__main__":
    main()
