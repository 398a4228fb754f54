"""Accuracy metrics. Each returns a `score` (the number gates compare) and whether higher is better."""

from __future__ import annotations

import importlib

import numpy as np

HIGHER_IS_BETTER = {"top1": True, "fidelity": True, "mae": False, "cer": False, "perplexity": False}


def top1(outputs: np.ndarray, labels: np.ndarray) -> dict:
    predicted = outputs.reshape(len(outputs), -1).argmax(axis=1)
    accuracy = float((predicted == labels.reshape(-1)).mean())
    return {"score": accuracy, "top1": accuracy, "samples": len(labels)}


def fidelity(outputs: np.ndarray, reference: np.ndarray, neighbours: int = 5) -> dict:
    """How close a candidate's outputs are to the baseline's: cosine per sample, max abs error and,
    for embeddings, how many of each sample's nearest neighbours stay the same."""
    got = outputs.reshape(len(outputs), -1).astype(np.float64)
    ref = reference.reshape(len(reference), -1).astype(np.float64)
    norms = np.linalg.norm(got, axis=1) * np.linalg.norm(ref, axis=1)
    cosine = (got * ref).sum(axis=1) / np.maximum(norms, 1e-12)
    result = {
        "score": float(cosine.mean()),
        "cosine_mean": float(cosine.mean()),
        "cosine_min": float(cosine.min()),
        "max_abs_error": float(np.abs(got - ref).max()),
        "samples": len(got),
    }
    k = min(neighbours, len(got) - 1)
    if k >= 1:
        result[f"neighbour_overlap_at_{k}"] = _neighbour_overlap(got, ref, k)
    return result


def _neighbour_overlap(got: np.ndarray, ref: np.ndarray, k: int) -> float:
    def nearest(x):
        unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        similarity = unit @ unit.T
        np.fill_diagonal(similarity, -np.inf)
        return np.argsort(-similarity, axis=1)[:, :k]

    a, b = nearest(got), nearest(ref)
    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(a, b)]))


def mae(outputs: np.ndarray, labels: np.ndarray) -> dict:
    error = float(np.abs(outputs.reshape(labels.shape).astype(np.float64) - labels).mean())
    return {"score": error, "mae": error, "samples": len(labels)}


def cer(texts: list[str], labels: list[str]) -> dict:
    edits = sum(_edit_distance(t, l) for t, l in zip(texts, labels))
    chars = sum(len(l) for l in labels)
    rate = edits / max(chars, 1)
    exact = float(np.mean([t == l for t, l in zip(texts, labels)]))
    return {"score": rate, "cer": rate, "exact_match": exact, "samples": len(labels)}


def _edit_distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def load_function(spec: str):
    module, _, function = spec.partition(":")
    if not module or not function:
        raise ValueError(f"expected `module:function`, got {spec!r}")
    return getattr(importlib.import_module(module), function)


def compute(metric: dict, outputs: np.ndarray, labels: np.ndarray | None, reference: np.ndarray | None) -> dict:
    name = metric["name"]
    if name == "fidelity":
        if reference is None:
            # the baseline is the reference: its fidelity to itself is 1 by definition, not a measurement
            return {"score": 1.0, "cosine_mean": 1.0, "samples": len(outputs), "reference": True}
        return fidelity(outputs, reference)
    if labels is None:
        raise ValueError(f"metric {name!r} needs labels and the evaluation data has none")
    if name == "top1":
        return top1(outputs, labels)
    if name == "mae":
        return mae(outputs, labels)
    if name == "cer":
        texts = list(load_function(metric["decode"])(outputs))
        return cer(texts, [str(l) for l in labels])
    raise ValueError(f"unknown metric {name!r}")
