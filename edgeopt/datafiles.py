"""The data-file format shared by the build and its workers: one .npz per data set, an array per model
input (samples first) and, when the data has them, the labels under a reserved name.

Arrays are kept samples first whatever the model wants, so that every cut (head, limit, one sample) is on
axis 0. How a run of samples becomes the model's feeds is the file's input layout, stored beside the
arrays: each input's batch axis (a recurrent state `[2, batch, 128]` takes its batch on axis 1; a scalar
has none) and the inputs that are constants rather than data (`sr: 16000`). `Samples.feed` is the one
place that turns samples into feeds.

Arrays only (never pickles): a worker under another interpreter, or on another machine, reads the same
file with numpy alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

LABELS_KEY = "__labels__"
LAYOUT_KEY = "__layout__"
RESERVED = (LABELS_KEY, LAYOUT_KEY)


@dataclass(frozen=True)
class InputLayout:
    """How one model input is fed. `batch_axis` None: the input has no batch axis (a scalar): each feed takes
    the batch's first sample's value. `value`: a constant fed to every call, never read from the data.

    `from_output`: a recurrent input (a streaming model's state), fed from that output of the previous call
    when samples are run in order (evaluation, calibration); it starts, and restarts every `sequence_length`
    samples, at `initial` in `shape` (one sample's, without the batch). Where calls are not chained (timing
    one step, layer diagnosis) it is fed its initial value.

    `padded_by`: the input is padded at the end of its axis 1 (a token sequence), and this input (the attention
    mask) says where its real values stop. A run of samples is cut to its longest real sequence: a batch of one
    is the sample as a user would feed it, unpadded. Padding changes what a static int8 model computes: MiniLM's
    int8-static kept 0.41 of the fidelity on sentences padded to 128 tokens, 0.55 in batches of 16 cut to
    their longest, 0.82 fed one unpadded sentence at a time. (The timed batch is chosen of median length:
    datasets.Dataset.typical.)"""

    batch_axis: int | None = 0
    value: float | int | list | None = None
    dtype: str | None = None
    from_output: str | None = None
    initial: float | None = None
    shape: list[int] | None = None
    sequence_length: int | None = None
    padded_by: str | None = None

    def to_json(self) -> dict:
        return {"batch_axis": self.batch_axis, "value": self.value, "dtype": self.dtype,
                **({"from_output": self.from_output, "initial": self.initial, "shape": self.shape,
                    "sequence_length": self.sequence_length} if self.from_output else {}),
                **({"padded_by": self.padded_by} if self.padded_by else {})}

    def initial_value(self, batch: int) -> np.ndarray:
        shape = list(self.shape or [])
        if self.batch_axis is not None:
            shape.insert(self.batch_axis, batch)
        return np.full(shape, self.initial or 0, dtype=self.dtype or "float32")


def padding_mask(layout: dict[str, InputLayout]) -> str | None:
    """The input (an attention mask) that says where padded inputs' real values stop, if any are padded."""
    return next((item.padded_by for item in layout.values() if item.padded_by), None)


@dataclass(frozen=True)
class Samples:
    """A data file read back: arrays samples first, labels, and how to feed them to the model."""

    arrays: dict[str, np.ndarray]
    labels: np.ndarray | None
    layout: dict[str, InputLayout] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return sample_count(self.arrays)

    def feed(self, start: int, stop: int) -> dict[str, np.ndarray]:
        """Samples [start, stop) as the model's feeds, constants included, each input's batch on its axis."""
        feeds = {}
        length = self.real_length(start, stop)
        for name, array in self.arrays.items():
            layout = self.layout.get(name, InputLayout())
            part = array[start:stop]
            if layout.padded_by and length is not None:
                part = part[:, :length]
            if layout.batch_axis is None:
                part = np.asarray(part[0])
            elif layout.batch_axis:
                part = np.moveaxis(part, 0, layout.batch_axis)
            feeds[name] = part
        for name, layout in self.layout.items():
            if layout.value is not None:
                feeds[name] = np.asarray(layout.value, dtype=layout.dtype)
            elif layout.from_output:
                feeds[name] = layout.initial_value(min(stop, self.count) - start)
        return feeds

    def real_length(self, start: int, stop: int) -> int | None:
        """The longest real (unpadded) sequence among samples [start, stop), when inputs are padded."""
        mask_name = padding_mask(self.layout)
        if mask_name is None or mask_name not in self.arrays:
            return None
        used = np.flatnonzero(np.asarray(self.arrays[mask_name][start:stop]).any(axis=0))
        return int(used[-1]) + 1 if used.size else 1

    def padded(self, name: str) -> bool:
        return bool(self.layout.get(name, InputLayout()).padded_by)

    def batch_axis(self, name: str) -> int | None:
        return self.layout.get(name, InputLayout()).batch_axis

    @property
    def recurrent(self) -> dict[str, InputLayout]:
        """Inputs fed from an output of the previous call, by name."""
        return {name: layout for name, layout in self.layout.items() if layout.from_output}

    def in_order(self, run: Callable[[dict], dict[str, np.ndarray]]) -> Iterator[tuple[dict, dict]]:
        """The samples one call each, in order, every recurrent input fed the output it names from the
        previous call (its initial value at each sequence's start): (feeds, outputs by name) per sample.
        `run` calls the model on feeds and returns its outputs by name."""
        carried: dict[str, np.ndarray] = {}
        for i in range(self.count):
            feeds = self.feed(i, i + 1)
            for name, layout in self.recurrent.items():
                if name in carried and not (layout.sequence_length and i % layout.sequence_length == 0):
                    feeds[name] = np.asarray(carried[name]).astype(feeds[name].dtype, copy=False)
            outputs = run(feeds)
            carried = {name: outputs[layout.from_output] for name, layout in self.recurrent.items()}
            yield feeds, outputs


def save_arrays(path: Path, inputs: dict[str, np.ndarray], labels: np.ndarray | None = None,
                layout: dict[str, InputLayout] | None = None) -> Path:
    arrays = dict(inputs)
    if labels is not None:
        arrays[LABELS_KEY] = labels
    if layout:
        arrays[LAYOUT_KEY] = np.asarray(json.dumps({k: v.to_json() for k, v in sorted(layout.items())}))
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


def load_samples(path: str | Path, limit: int | None = None) -> Samples:
    cut = slice(None) if limit is None else slice(0, limit)
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k][cut] for k in data.files if k not in RESERVED}
        labels = data[LABELS_KEY][cut] if LABELS_KEY in data.files else None
        layout = ({k: InputLayout(**v) for k, v in json.loads(str(data[LAYOUT_KEY])).items()}
                  if LAYOUT_KEY in data.files else {})
    return Samples(arrays, labels, layout)


def load_arrays(path: str | Path, limit: int | None = None) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """(inputs by name, labels or None), each cut to the first `limit` samples when given."""
    samples = load_samples(path, limit)
    return samples.arrays, samples.labels


def sample_count(arrays: dict[str, np.ndarray]) -> int:
    return len(next(iter(arrays.values())))
