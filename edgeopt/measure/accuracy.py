"""The accuracy of one model on the evaluation data, in the worker that loaded it."""

from __future__ import annotations

import numpy as np

from edgeopt.datafiles import load_arrays, sample_count
from edgeopt.frameworks.base import GraphSession
from edgeopt.measure.metrics import metric as metric_named
from edgeopt.protocol import AccuracyRequest


def outputs_of(session: GraphSession, arrays: dict[str, np.ndarray], output: int | str, batch: int) -> np.ndarray:
    index = session.output_names.index(output) if isinstance(output, str) else int(output)
    count = sample_count(arrays)
    batch = session.fixed_batch() or batch
    return np.concatenate([session.run(session.feeds(arrays, i, i + batch))[index] for i in range(0, count, batch)])


def graph_accuracy(session: GraphSession, request: AccuracyRequest) -> dict:
    arrays, labels = load_arrays(request.eval_data)
    outputs = outputs_of(session, arrays, request.metric.output, request.eval_batch_size)
    if request.save_outputs:
        np.save(request.save_outputs, outputs)
    reference = np.load(request.reference_outputs) if request.reference_outputs else None
    return metric_named(request.metric.name).evaluate(request.metric.model_dump(), outputs, labels, reference)
