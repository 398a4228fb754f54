"""Turn the manifest's data sources into arrays: {input name: array with samples first} + labels."""

from __future__ import annotations

import hashlib
import json
import re
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from edgeopt.datafiles import LABELS_KEY, InputLayout, padding_mask, save_arrays
from edgeopt.errors import ManifestError, MissingDependency
from edgeopt.manifest import (
    HookData,
    ImageFolderData,
    Manifest,
    NpyData,
    NpzData,
    TextLinesData,
    resolve_path,
)
from edgeopt.measure.metrics import load_function

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".pgm", ".ppm"}


@dataclass(frozen=True)
class Dataset:
    """Arrays samples first, labels, and how each input is fed (see datafiles.InputLayout)."""

    inputs: dict[str, np.ndarray]
    labels: np.ndarray | None
    layout: dict[str, InputLayout] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(next(iter(self.inputs.values())))

    def head(self, count: int) -> Dataset:
        return replace(self, inputs={k: v[:count] for k, v in self.inputs.items()},
                       labels=None if self.labels is None else self.labels[:count])

    def tail(self, count: int) -> Dataset:
        return replace(self, inputs={k: v[-count:] for k, v in self.inputs.items()},
                       labels=None if self.labels is None else self.labels[-count:])

    def with_layout(self, layout: dict[str, InputLayout]) -> Dataset:
        """Constants and recurrent inputs come from the layout, never from the data: an array of the same
        name is dropped. What the data source knows of its own arrays (their padding) is kept."""
        constants = {name for name, item in layout.items() if item.value is not None or item.from_output}
        own = {name: item for name, item in self.layout.items() if name not in constants}
        merged = {**own, **{name: item if name in constants else replace(item, padded_by=item.padded_by
                                                                            or self._padded_by(name))
                            for name, item in layout.items()}}
        return replace(self, inputs={k: v for k, v in self.inputs.items() if k not in constants}, layout=merged)

    def _padded_by(self, name: str) -> str | None:
        return self.layout[name].padded_by if name in self.layout else None

    def typical(self, count: int) -> Dataset:
        """`count` samples to time: for padded token sequences, those of median real length (fed unpadded),
        what a user typically sends; otherwise the first ones. (Timed at the padded width, 128 tokens, OpenVINO
        int8 led MiniLM's candidates; on real sentences ONNX Runtime's fused int8 ran 1.8x faster than it.)"""
        mask = self.inputs.get(padding_mask(self.layout) or "")
        if mask is None:
            return self.head(count)
        lengths = np.asarray(mask).astype(bool).sum(axis=1)
        median = np.sort(lengths)[(len(lengths) - 1) // 2]
        chosen = np.sort(np.argsort(np.abs(lengths - median), kind="stable")[:count])
        return replace(self, inputs={k: v[chosen] for k, v in self.inputs.items()},
                       labels=None if self.labels is None else self.labels[chosen])

    def digest(self) -> str:
        """Hash of the arrays themselves: .npz files carry write times, so their bytes change every build."""
        digest = hashlib.sha256()
        arrays = {**self.inputs, **({LABELS_KEY: self.labels} if self.labels is not None else {})}
        for name in sorted(arrays):
            array = np.ascontiguousarray(arrays[name])
            digest.update(f"{name}:{array.dtype.str}:{array.shape}\n".encode())
            digest.update(array.tobytes() if array.dtype != object else repr(array.tolist()).encode())
        fed_otherwise = {k: v.to_json() for k, v in sorted(self.layout.items()) if v != InputLayout()}
        if fed_otherwise:  # the same arrays fed another way are other inputs
            digest.update(json.dumps(fed_otherwise).encode())
        return digest.hexdigest()

    def save(self, path: Path) -> Path:
        return save_arrays(path, self.inputs, self.labels, self.layout)


def load_dataset(source, manifest: Manifest, where: str, model_inputs: list[str] | None = None) -> Dataset:
    """`model_inputs`: the names the model declares (when known), for sources that feed a single input."""
    loaders = {NpzData: _npz, NpyData: _npy, ImageFolderData: _images, TextLinesData: _text, HookData: _hook}
    dataset = loaders[type(source)](source, manifest, where, model_inputs)
    if len(dataset) == 0:
        raise ManifestError(manifest.name, where, "the data source yielded no samples")
    return dataset.head(source.limit) if source.limit else dataset


def _single_input_name(manifest: Manifest, where: str, model_inputs: list[str] | None) -> str:
    """The one input not given a constant value: the manifest's if it lists inputs, else the model's."""
    constants = {spec.name for spec in manifest.inputs if spec.value is not None}
    listed = [spec.name for spec in manifest.inputs if spec.value is None]
    fed = listed or [name for name in model_inputs or () if name not in constants]
    if len(fed) == 1:
        return fed[0]
    raise ManifestError(manifest.name, f"{where}.type", "this data source feeds one input: list exactly one under "
                        "`inputs`" + (f" (the model has {', '.join(fed)})" if fed else ""))


def _npz(source: NpzData, manifest: Manifest, where: str, model_inputs: list[str] | None) -> Dataset:
    with np.load(_existing(source.path, manifest, where)) as data:
        labels = data[source.labels_key] if source.labels_key and source.labels_key in data.files else None
        inputs = {k: data[k] for k in data.files if k != source.labels_key}
    return Dataset(inputs, labels)


def _npy(source: NpyData, manifest: Manifest, where: str, model_inputs: list[str] | None) -> Dataset:
    array = np.load(_existing(source.path, manifest, where))
    labels = np.load(_existing(source.labels, manifest, where)) if source.labels else None
    return Dataset({_single_input_name(manifest, where, model_inputs): array}, labels)


def _images(source: ImageFolderData, manifest: Manifest, where: str, model_inputs: list[str] | None) -> Dataset:
    try:
        from PIL import Image
    except ImportError:
        raise MissingDependency("pillow (image folders)", "pip install 'edgeopt[images]'") from None
    folder = _existing(source.path, manifest, where)
    classes = image_classes(folder)
    files = image_files(folder)
    if source.limit:
        files = _spread(files, source.limit)
    height, width = source.size
    mean = np.asarray(source.mean, dtype=np.float32).reshape(-1, 1, 1)
    std = np.asarray(source.std, dtype=np.float32).reshape(-1, 1, 1)
    images = []
    for path, _ in files:
        with Image.open(path) as image:
            image = image.convert("L" if source.channels == 1 else "RGB").resize((width, height))
            pixels = np.asarray(image, dtype=np.float32).reshape(height, width, source.channels)
        images.append((pixels.transpose(2, 0, 1) * source.scale - mean) / std)
    labels = np.asarray([label for _, label in files], dtype=np.int64) if classes else None
    return Dataset({_single_input_name(manifest, where, model_inputs): np.stack(images).astype(np.float32)}, labels)


def image_classes(folder: Path) -> list[str]:
    """An image folder's class names, in label order: its sub-folders, sorted (none: unlabelled images)."""
    return sorted(p.name for p in folder.iterdir() if p.is_dir())


def image_files(folder: Path) -> list[tuple[Path, int]]:
    """(image, label) in the order the evaluation reads them: class by class, files sorted; label -1 when the
    folder has no class sub-folders."""
    classes = image_classes(folder)
    files = ([(f, i) for i, c in enumerate(classes) for f in sorted((folder / c).iterdir())] if classes
             else [(f, -1) for f in sorted(folder.iterdir())])
    return [(f, label) for f, label in files if f.suffix.lower() in IMAGE_SUFFIXES]


def _spread(items: list, count: int) -> list:
    # take evenly across the (class-sorted) list so a limit keeps every class
    if count >= len(items):
        return items
    return [items[int(i * len(items) / count)] for i in range(count)]


def _text(source: TextLinesData, manifest: Manifest, where: str, model_inputs: list[str] | None) -> Dataset:
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise MissingDependency("tokenizers (text data)", "pip install 'edgeopt[hf]'") from None
    lines = text_samples(source, _existing(source.path, manifest, where))
    if source.limit:
        lines = lines[: source.limit]
    tokenizer_path = tokenizer_file(source, manifest)
    if not tokenizer_path.exists():
        raise ManifestError(manifest.name, f"{where}.tokenizer", f"no tokenizer.json at {tokenizer_path}")
    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    tokenizer.enable_truncation(max_length=source.max_length)
    tokenizer.enable_padding()  # to the longest line: one shape for the whole set
    encodings = tokenizer.encode_batch(lines)
    inputs = {
        "input_ids": np.asarray([e.ids for e in encodings], dtype=np.int64),
        "attention_mask": np.asarray([e.attention_mask for e in encodings], dtype=np.int64),
        "token_type_ids": np.asarray([e.type_ids for e in encodings], dtype=np.int64),
    }
    # stored padded to the longest sample (one array per input); fed cut to each run's longest real sequence
    return Dataset(inputs, None, {name: InputLayout(padded_by="attention_mask") for name in inputs})


def text_samples(source: TextLinesData, path: Path) -> list[str]:
    """A text file's samples as the manifest asks: whole sentences or lines, the short ones left out."""
    text = path.read_text(errors="replace")
    found = sentences(text) if source.unit == "sentence" else [line.strip() for line in text.splitlines()]
    return [sample for sample in found if len(sample) >= source.min_chars]


def tokenizer_file(source: TextLinesData, manifest: Manifest) -> Path:
    """The tokenizer.json text data is tokenized with: the data's own, else the model folder's."""
    path = resolve_path(source.tokenizer) if source.tokenizer else resolve_path(manifest.model.path)
    return path / "tokenizer.json" if path.is_dir() else path


SENTENCE_END = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"')\]]))\s+(?=[\"'(\[]?[A-Z0-9])")


def sentences(text: str) -> list[str]:
    """A text's sentences: paragraphs (blank-line separated) rejoined across line breaks, then split after
    . ! ? where the next word starts a sentence. Headings and list items without a full stop stay whole."""
    found = []
    for paragraph in re.split(r"\n\s*\n", text):
        joined = " ".join(paragraph.split())
        found.extend(part.strip() for part in SENTENCE_END.split(joined) if part.strip())
    return found


def _hook(source: HookData, manifest: Manifest, where: str, model_inputs: list[str] | None) -> Dataset:
    if manifest.base_dir not in sys.path:
        sys.path.insert(0, manifest.base_dir)
    try:
        result = load_function(source.function)(**source.args)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ManifestError(manifest.name, f"{where}.function", f"cannot load {source.function!r}: {exc}") from None
    if not isinstance(result, dict) or "inputs" not in result:
        raise ManifestError(manifest.name, f"{where}.function", "the hook must return {'inputs': {...}, 'labels': ...}")
    labels = result.get("labels")
    return Dataset({k: np.asarray(v) for k, v in result["inputs"].items()},
                   None if labels is None else np.asarray(labels))


def _existing(path: str | None, manifest: Manifest, where: str) -> Path:
    resolved = resolve_path(path or "")
    if not resolved.exists():
        raise ManifestError(manifest.name, f"{where}.path", f"{resolved} does not exist")
    return resolved
