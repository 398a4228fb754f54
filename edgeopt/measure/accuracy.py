"""The accuracy of one model on the evaluation data, in the worker that loaded it."""

from __future__ import annotations

import numpy as np

from edgeopt.datafiles import Samples, load_samples
from edgeopt.frameworks.base import GraphSession
from edgeopt.measure.metrics import metric as metric_named
from edgeopt.protocol import AccuracyRequest


def outputs_of(session: GraphSession, samples: Samples, output: int | str, batch: int) -> np.ndarray:
    index = session.output_names.index(output) if isinstance(output, str) else int(output)
    if samples.recurrent:
        return _carried_outputs(session, samples, index)
    batch = session.fixed_batch(samples) or batch
    return _joined([np.atleast_1d(session.run(session.feeds(samples, i, i + batch))[index])
                    for i in range(0, samples.count, batch)])


def _joined(parts: list[np.ndarray]) -> np.ndarray:
    """Batches' outputs samples first. Unpadded token sequences make per-token outputs differ in length
    between batches: those are zero-padded to the longest, the same way for the baseline and a candidate."""
    widest = tuple(max(sizes) for sizes in zip(*(p.shape[1:] for p in parts))) if parts else ()
    if all(p.shape[1:] == widest for p in parts):
        return np.concatenate(parts)
    return np.concatenate([np.pad(p, [(0, 0)] + [(0, w - s) for w, s in zip(widest, p.shape[1:])]) for p in parts])


def _carried_outputs(session: GraphSession, samples: Samples, index: int) -> np.ndarray:
    """A streaming model over its samples in order, one call per sample, each recurrent input fed the output
    it names from the previous call (its initial value at each sequence's start): the state a candidate
    carries is its own, so its errors accumulate as they would on the device."""
    recurrent = samples.recurrent
    missing = sorted({layout.from_output for layout in recurrent.values()} - set(session.output_names))
    if missing:
        raise KeyError(f"recurrent input(s) are fed from output(s) {missing} the model does not have; it has "
                       f"{session.output_names}")

    def run(feeds: dict) -> dict:
        return dict(zip(session.output_names, session.run(session.model_feeds(feeds))))

    name = session.output_names[index]
    return np.concatenate([np.atleast_1d(outputs[name]) for _, outputs in samples.in_order(run)])


def graph_accuracy(session: GraphSession, request: AccuracyRequest) -> dict:
    samples = load_samples(request.eval_data)
    outputs = outputs_of(session, samples, request.metric.output, request.eval_batch_size)
    if request.save_outputs:
        np.save(request.save_outputs, outputs)
    reference = np.load(request.reference_outputs) if request.reference_outputs else None
    return metric_named(request.metric.name).evaluate(request.metric.model_dump(), outputs, samples.labels, reference)


def score_outputs(request) -> tuple[dict, dict]:
    """The metric on a target's outputs and on the host's outputs of the same samples, each judged against
    its own side's baseline outputs where the metric compares with the baseline."""
    labels = load_samples(request.eval_data).labels
    spec, metric = request.metric.model_dump(), metric_named(request.metric.name)

    def judged(outputs: str, reference: str | None) -> dict:
        return metric.evaluate(spec, np.load(outputs), labels, np.load(reference) if reference else None)

    return judged(request.outputs, request.reference_outputs), judged(request.host_outputs, request.host_reference_outputs)


def agreement(emulated_path: str, host_path: str) -> dict:
    """How far the target runtime's outputs are from the host's: beyond fp32 rounding, kernels differ
    (int8 kernels are not bit-exact across architectures; OpenVINO on ARM computes in f16 by default)."""
    emulated = np.load(emulated_path).astype(np.float64)
    host = np.load(host_path).astype(np.float64)[: len(emulated)]
    difference = np.abs(emulated - host)
    scale = float(np.sqrt(np.mean(host ** 2))) or 1.0
    result = {"max_abs_diff": float(difference.max()), "relative_rms": float(np.sqrt(np.mean(difference ** 2))) / scale,
              "samples": len(emulated)}
    if host.ndim >= 2 and host.shape[-1] > 1:
        flat_e, flat_h = emulated.reshape(len(emulated), -1), host.reshape(len(host), -1)
        result["argmax_agreement"] = float(np.mean(flat_e.argmax(axis=1) == flat_h.argmax(axis=1)))
    return result
