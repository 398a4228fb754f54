"""The data a build feeds its workers, prepared once: evaluation, timing and calibration files (or, for
language models, the evaluation text as it is), with digests of their contents for the cache keys."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgeopt.artifact import ModelArtifact
from edgeopt.builder.layout import OutputLayout
from edgeopt.datasets import Dataset, load_dataset
from edgeopt.errors import ManifestError
from edgeopt.hashing import path_digest, value_digest
from edgeopt.inputs import DeclaredInput, DeclaredOutput, declared_io, input_layouts
from edgeopt.manifest import Manifest, resolve_path


@dataclass(frozen=True)
class BuildData:
    eval: Path
    timing: Path
    calibration: Path
    digests: dict
    notes: tuple[str, ...]
    # a language model's calibration text is its evaluation text unless the manifest names one: the leading tokens
    # the evaluation scores are then not to be fitted on
    calibration_skip_tokens: int = 0


def prepare_data(manifest: Manifest, layout: OutputLayout) -> BuildData:
    if manifest.model.task == "causal-lm":
        return _text(manifest)
    io = declared_source_io(manifest)
    declared, outputs = io if io is not None else (None, None)
    names = [d.name for d in declared] if declared is not None else None
    evaluation = _checked(load_dataset(manifest.evaluation.data, manifest, "evaluation.data", names),
                          manifest, declared, outputs, "evaluation.data")
    notes = []
    if manifest.calibration.data is not None:
        calibration = _checked(load_dataset(manifest.calibration.data, manifest, "calibration.data", names),
                               manifest, declared, outputs, "calibration.data")
    else:
        calibration = evaluation
        notes.append("calibrated on the evaluation data (the manifest names no calibration data)")
    calibration = calibration.head(manifest.calibration.samples)
    batch = manifest.measure.batch_size
    if len(evaluation) < batch:
        raise ManifestError(manifest.name, "measure.batch_size",
                            f"{batch} is more than the {len(evaluation)} evaluation samples")
    timing = evaluation.typical(batch)  # token sequences: the median-length sentences, unpadded
    return BuildData(
        eval=evaluation.save(layout.data / "eval.npz"),
        timing=timing.save(layout.data / "timing.npz"),
        calibration=calibration.save(layout.data / "calibration.npz"),
        digests={"eval": evaluation.digest(), "timing": timing.digest(), "calibration": calibration.digest()},
        notes=tuple(notes),
    )


def declared_source_io(manifest: Manifest) -> tuple[list[DeclaredInput], list[DeclaredOutput]] | None:
    """The source model's inputs and outputs as its file declares them (ONNX sources; an export is made later)."""
    if manifest.model.format != "onnx":
        return None
    from edgeopt.model_checks import check_onnx

    path = resolve_path(manifest.model.path)
    if not path.is_file():
        raise ManifestError(manifest.name, "model.path", f"{path} is not a model file")
    return declared_io(check_onnx(path))  # checked before anything reads it further


def _checked(dataset: Dataset, manifest: Manifest, declared: list[DeclaredInput] | None,
             outputs: list[DeclaredOutput] | None, where: str) -> Dataset:
    return dataset.with_layout(input_layouts(manifest, declared, dataset.inputs, where, outputs))


def _text(manifest: Manifest) -> BuildData:
    """Language models read the evaluation text themselves, with their own tokenizer; what calibrates (an importance
    matrix) reads the calibration text, or the evaluation text after the tokens the evaluation scores."""
    text = _text_file(manifest.evaluation.data, manifest, "evaluation.data")
    spec = manifest.llm.model_dump(mode="json")
    if manifest.calibration.data is not None:
        calibration, skip, notes = _text_file(manifest.calibration.data, manifest, "calibration.data"), 0, ()
    else:
        calibration, skip = text, manifest.llm.eval_tokens
        notes = (f"calibrated on the evaluation text after the {skip} tokens it scores (the manifest names no "
                 "calibration data)",)
    digests = {"eval": value_digest([path_digest(text), spec]), "timing": value_digest(spec),
               "calibration": value_digest([path_digest(calibration), skip])}
    return BuildData(eval=text, timing=text, calibration=calibration, digests=digests, notes=notes,
                     calibration_skip_tokens=skip)


def _text_file(source, manifest: Manifest, where: str) -> Path:
    if source.type != "text":
        raise ManifestError(manifest.name, f"{where}.type", f"a language model reads text (type: text), got "
                            f"{source.type!r}")
    path = resolve_path(source.path)
    if not path.is_file():
        raise ManifestError(manifest.name, f"{where}.path", f"{path} is not a text file")
    return path


def source_artifact(manifest: Manifest, framework: str) -> ModelArtifact | None:
    """The manifest's model as an artifact, when it is one file a runtime loads as it is."""
    if manifest.model.format not in ("onnx", "gguf"):
        return None
    path = resolve_path(manifest.model.path)
    if not path.is_file():
        raise ManifestError(manifest.name, "model.path", f"{path} is not a model file")
    fmt = manifest.model.format
    # a model from outside is checked before any runtime parses it (truncated, traversing external data, absurd dims)
    from edgeopt.model_checks import check_gguf, check_onnx

    (check_onnx if fmt == "onnx" else check_gguf)(path)
    return ModelArtifact(path=str(path), format=fmt, framework=framework, precision="fp32" if fmt == "onnx" else "as-given")
