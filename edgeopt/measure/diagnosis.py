"""Per-layer diagnosis: where a lower-precision model's intermediate outputs leave the float model's.

Each adapter exposes `layer_outputs(artifact, arrays, count) -> {layer name: array}`; layers present
in both models (same names) are compared sample by sample.
"""

from __future__ import annotations

import numpy as np


def compare_layers(reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray], top: int = 15) -> dict:
    rows = []
    for name, ref in reference.items():
        got = candidate.get(name)
        if got is None or got.shape != ref.shape or ref.size == 0:
            continue
        a, b = ref.reshape(-1).astype(np.float64), got.reshape(-1).astype(np.float64)
        if not (np.isfinite(a).all() and np.isfinite(b).all()):
            continue
        norm = np.linalg.norm(a) * np.linalg.norm(b)
        cosine = float(a @ b / norm) if norm > 0 else (1.0 if np.allclose(a, b) else 0.0)
        relative = float(np.linalg.norm(a - b) / max(np.linalg.norm(a), 1e-12))
        rows.append({"layer": name, "cosine": cosine, "relative_error": relative})
    rows.sort(key=lambda r: (r["cosine"], -r["relative_error"]))
    return {"compared_layers": len(rows), "layers": rows[:top]}


def quantization_sensitivity(nodes: list[tuple[str, str, np.ndarray]], activations: dict[str, np.ndarray],
                             weight_axis: dict[str, int | None]) -> list[tuple[str, float]]:
    """Nodes ranked by the relative error int8 adds to them, most first. Rounding to 255 steps over a tensor's
    range costs about range / 255 against its typical (rms) value, so a tensor whose peak is far above its rms
    (outlier features, as after a GELU) loses most. Per node: that ratio for its activation input (a per-tensor
    range, from the float model's outputs on calibration samples) plus its weight's (per output channel along
    `weight_axis[name]`, or over the whole tensor when None). `nodes`: (name, activation tensor, weights).
    (Ranked by the quantized model's own per-layer divergence instead, MiniLM's culprits, its FFN-output
    MatMuls, did not come out on top: each layer's divergence carries every earlier one's.)"""
    ranked = []
    for name, activation, weights in nodes:
        if activation not in activations:
            continue
        ranked.append((name, _peak_to_rms(activations[activation]) + _weight_ratio(weights, weight_axis.get(name))))
    return sorted(ranked, key=lambda item: -item[1])


def _peak_to_rms(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=np.float64)
    rms = np.sqrt((values ** 2).mean())
    return float(np.abs(values).max() / rms) if rms > 0 else 0.0


def _weight_ratio(weights: np.ndarray, axis: int | None) -> float:
    if axis is None:
        return _peak_to_rms(weights)
    channels = np.moveaxis(np.asarray(weights, dtype=np.float64), axis, 0).reshape(weights.shape[axis], -1)
    rms = np.sqrt((channels ** 2).mean(axis=1))
    return float(np.mean(np.abs(channels).max(axis=1) / np.where(rms > 0, rms, 1.0)))
