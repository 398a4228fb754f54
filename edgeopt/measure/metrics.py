"""Accuracy metrics: one registry holds every fact about a metric (direction, what it needs, how it is
computed, how the report explains it), so the build asks the metric and never tests its name."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool
    note: str  # one line for the report: what the score is and how "retained" reads it
    needs_labels: bool = False
    needs_reference: bool = False  # compares candidates with the baseline's own outputs (saved by the baseline)
    needs_decode: bool = False  # a `decode` hook turns outputs into text first
    computed_by_runtime: bool = False  # language models: the runtime scores the text itself
    tasks: tuple[str, ...] | None = None  # None: any task but those that need a runtime-computed metric
    compute: Callable[..., dict] | None = None  # (outputs, labels, reference, spec) -> {"score": ..., ...}

    def retained(self, score: float | None, base: float | None) -> float | None:
        """Candidate vs baseline as a ratio where 1.0 means nothing was lost."""
        if score is None or base is None:
            return None
        if self.higher_is_better:
            return None if base == 0 else score / base
        if score == 0:
            return 1.0 if base == 0 else float("inf")
        return base / score

    def evaluate(self, spec: Mapping, outputs: np.ndarray, labels: np.ndarray | None,
                 reference: np.ndarray | None) -> dict:
        if self.compute is None:
            raise ValueError(f"metric {self.name!r} is computed by the runtime, not from outputs")
        if self.needs_reference and reference is None:
            # the baseline is the reference: its score against itself is 1 by definition, not a measurement
            return {"score": 1.0, "cosine_mean": 1.0, "samples": len(outputs), "reference": True}
        if self.needs_labels and labels is None:
            raise ValueError(f"metric {self.name!r} needs labels and the evaluation data has none")
        return self.compute(outputs, labels, reference, spec)


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


def _decoded_cer(outputs, labels, reference, spec) -> dict:
    texts = list(load_function(spec["decode"])(outputs))
    return cer(texts, [str(label) for label in labels])


METRICS: Mapping[str, Metric] = MappingProxyType({
    "top1": Metric("top1", True, "share of correct labels; retained = candidate / baseline", needs_labels=True,
                   compute=lambda outputs, labels, reference, spec: top1(outputs, labels)),
    "fidelity": Metric("fidelity", True, "mean cosine similarity to the baseline's outputs; retained = candidate / "
                       "baseline", needs_reference=True,
                       compute=lambda outputs, labels, reference, spec: fidelity(outputs, reference)),
    "mae": Metric("mae", False, "mean absolute error, lower is better; retained = baseline / candidate",
                  needs_labels=True, compute=lambda outputs, labels, reference, spec: mae(outputs, labels)),
    "cer": Metric("cer", False, "character error rate, lower is better; retained = baseline / candidate",
                  needs_labels=True, needs_decode=True, compute=_decoded_cer),
    "perplexity": Metric("perplexity", False, "perplexity of the evaluation text, lower is better; retained = "
                         "baseline / candidate; latency columns are milliseconds between generated tokens",
                         computed_by_runtime=True, tasks=("causal-lm",)),
})


def metric(name: str) -> Metric:
    return METRICS[name]
