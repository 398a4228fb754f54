"""The data-file format shared by the build and its workers: one .npz per data set, an array per model
input (samples first) and, when the data has them, the labels under a reserved name.

Arrays only (never pickles): a worker under another interpreter, or on another machine, reads the same
file with numpy alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

LABELS_KEY = "__labels__"


def save_arrays(path: Path, inputs: dict[str, np.ndarray], labels: np.ndarray | None = None) -> Path:
    arrays = dict(inputs)
    if labels is not None:
        arrays[LABELS_KEY] = labels
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


def load_arrays(path: str | Path, limit: int | None = None) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """(inputs by name, labels or None), each cut to the first `limit` samples when given."""
    cut = slice(None) if limit is None else slice(0, limit)
    with np.load(path, allow_pickle=False) as data:
        inputs = {k: data[k][cut] for k in data.files if k != LABELS_KEY}
        labels = data[LABELS_KEY][cut] if LABELS_KEY in data.files else None
    return inputs, labels


def sample_count(arrays: dict[str, np.ndarray]) -> int:
    return len(next(iter(arrays.values())))
