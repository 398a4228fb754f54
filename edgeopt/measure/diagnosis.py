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
