"""The manifest: what to optimize, on what data, judged how. Validated whole before anything runs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from edgeopt.errors import ManifestError
from edgeopt.measure.metrics import METRICS
from edgeopt.validation import validate_model
from edgeopt.yamlio import load_yaml

Task = Literal["classification", "embedding", "ocr", "regression", "generic", "causal-lm"]
SourceFormat = Literal["onnx", "hf-transformers", "sentence-transformers", "gguf"]
Precision = Literal["float32", "float16", "int64", "int32", "uint8", "int8", "bool"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _resolve_relative(value: str | None, info: ValidationInfo) -> str | None:
    """Relative paths are relative to the manifest's folder; `pkg:` paths resolve when used."""
    if value is None or value.startswith("pkg:"):
        return value
    base = (info.context or {}).get("base_dir")
    path = Path(value).expanduser()
    return str(path if path.is_absolute() or base is None else (Path(base) / path).resolve())


class ModelSource(_Strict):
    path: str = Field(description="file or folder; `pkg:module/sub/path` points inside an installed package")
    format: SourceFormat
    task: Task = "generic"

    _resolve = field_validator("path")(_resolve_relative)


class InputSpec(_Strict):
    """One model input, as far as the model's own declaration needs saying: where a run of samples goes
    (its batch axis), or a constant fed on every call."""

    name: str
    shape: list[int | str] | None = Field(
        default=None, description="ints are fixed sizes, strings name dynamic axes; the one named `batch` (or "
        "batch_size, N) is where samples are stacked; [] is a scalar; default: as the model declares it")
    dtype: Precision | None = Field(default=None, description="default: as the model declares it")
    batch_axis: int | None = Field(default=None, ge=0, description="the axis samples are stacked on when fed "
                                   "(data arrays are always samples first); default: the shape's batch axis, else 0")
    value: float | int | list | None = Field(default=None, description="a constant fed on every call and not read "
                                             "from the data (e.g. a sample rate: 16000)")
    from_output: str | None = Field(default=None, description="a recurrent input (a streaming model's state): fed "
                                    "the named output of the previous call when samples run in order; not read "
                                    "from the data")
    initial: float = Field(default=0.0, description="a recurrent input's value at the start of each sequence")

    @model_validator(mode="after")
    def _axis_within_shape(self) -> InputSpec:
        if self.batch_axis is not None and self.value is not None:
            raise ValueError("a constant (`value`) has no batch axis")
        if self.from_output is not None and self.value is not None:
            raise ValueError("an input is a constant (`value`) or fed from an output (`from_output`), not both")
        if self.batch_axis is not None and self.shape is not None and self.batch_axis >= len(self.shape):
            raise ValueError(f"batch_axis {self.batch_axis} is outside shape {self.shape}")
        if self.value is not None:
            _check_constant(self.value)
        return self


MAX_CONSTANT_ELEMENTS = 1_000_000


def _check_constant(value) -> None:
    """A constant is a number or a rectangular list of numbers, of a size a manifest can sensibly hold."""
    import numpy as np

    try:
        array = np.asarray(value)
    except ValueError:
        raise ValueError("value: a number or a rectangular list of numbers (rows of one length)") from None
    if array.dtype.kind not in "biuf":
        raise ValueError(f"value: a number or a rectangular list of numbers, not {array.dtype.kind!r} data")
    if array.size > MAX_CONSTANT_ELEMENTS:
        raise ValueError(f"value: {array.size:,} numbers; a constant in the manifest holds at most "
                         f"{MAX_CONSTANT_ELEMENTS:,} (put larger arrays in the data)")


class _DataSource(_Strict):
    limit: int | None = Field(default=None, ge=1, description="use at most this many samples")


class NpzData(_DataSource):
    type: Literal["npz"]
    path: str
    labels_key: str | None = Field(default="labels", description="array of labels, if the file has one")

    _resolve = field_validator("path")(_resolve_relative)


class NpyData(_DataSource):
    type: Literal["npy"]
    path: str = Field(description="one array, fed to the model's single input")
    labels: str | None = Field(default=None, description=".npy file of labels")

    _resolve = field_validator("path", "labels")(_resolve_relative)


class ImageSteps(_Strict):
    """How an image becomes the model's input: what a package's preprocess.py repeats on the device."""

    size: tuple[int, int] = Field(description="height, width")
    channels: Literal[1, 3] = 3
    mean: list[float] = [0.0]
    std: list[float] = [1.0]
    scale: float = Field(default=1 / 255, description="applied to pixel values before mean/std")


class ImageFolderData(_DataSource, ImageSteps):
    type: Literal["images"]
    path: str = Field(description="folder of class sub-folders (labels = sorted folder names) or of images")

    _resolve = field_validator("path")(_resolve_relative)


class TextLinesData(_DataSource):
    type: Literal["text"]
    path: str = Field(description="text file; one sample per sentence (or per non-empty line)")
    unit: Literal["sentence", "line"] = Field(
        default="sentence", description="sentence: whole sentences, across line breaks (a wrapped text's lines are "
        "fragments: calibrating on them gives ranges real inputs exceed); line: one sample per line")
    tokenizer: str | None = Field(default=None, description="tokenizer.json or its folder; default: the model folder")
    max_length: int = Field(default=128, ge=1)
    min_chars: int = Field(default=20, ge=0, description="skip samples shorter than this")

    _resolve = field_validator("path", "tokenizer")(_resolve_relative)


class HookData(_DataSource):
    type: Literal["hook"]
    function: str = Field(description="`module:function` returning {'inputs': {name: array}, 'labels': array}")
    args: dict = Field(default_factory=dict, description="keyword arguments for the function")


DataSource = Annotated[
    NpzData | NpyData | ImageFolderData | TextLinesData | HookData, Field(discriminator="type")
]

MetricName = Literal[tuple(METRICS)]  # the metric registry is the one list


class MetricSpec(_Strict):
    name: MetricName
    output: int | str = Field(default=0, description="which model output the metric reads (index or name)")
    decode: str | None = Field(
        default=None, description="`module:function(outputs) -> list[str]`, required by cer"
    )


class EvaluationSpec(_Strict):
    data: DataSource
    metric: MetricSpec
    batch_size: int = Field(default=16, ge=1, description="batch for the accuracy pass (if the model allows)")
    sequence_length: int | None = Field(default=None, ge=1, description="with recurrent inputs (`from_output`): "
                                        "samples per sequence, run in order, the state restarting at each; "
                                        "default: all samples are one sequence")


class CalibrationSpec(_Strict):
    data: DataSource | None = Field(default=None, description="default: the evaluation data")
    samples: int = Field(default=64, ge=1)


class MeasureSpec(_Strict):
    batch_size: int = Field(default=1, ge=1, description="batch used for latency")
    warmup_runs: int = Field(default=10, ge=0, description="untimed runs before a model's first window (a third of "
                             "them before each later window)")
    min_runs: int = Field(default=30, ge=1, description="timed runs per model, at least (spread over the rounds)")
    max_runs: int = Field(default=500, ge=1, description="timed runs per model, at most (spread over the rounds)")
    time_budget_s: float = Field(default=5.0, gt=0, description="timing time per model, spread over the rounds; "
                                 "timed runs stop after it once min_runs ran")
    rounds: int = Field(default=5, ge=1, description="timing rounds: each times the baseline and a batch of candidates, "
                        "interleaved in a shuffled order; speedups are medians of in-round ratios")
    max_rounds: int = Field(default=10, ge=1, description="extra rounds go to candidates whose speedup verdict is "
                            "inconclusive, up to this many in all")
    emulated_samples: int = Field(default=16, ge=0, description="for ARM targets: evaluation samples each ONNX Runtime / "
                                  "OpenVINO candidate is also run on with the target's runtime build under emulation "
                                  "(~100-300x slower than native); 0 turns emulation off")
    speedup_margin: float = Field(default=0.05, ge=0, lt=1, description="each speedup interval is widened by this "
                                  "share on both sides: consecutive rounds cannot show how much a ratio moves between "
                                  "builds (measured: a few percent between two quiet builds of 2-vCPU VMs)")
    threads: int | None = Field(default=None, ge=1, description="runtime threads; default: the runtime's own")
    timeout_s: float = Field(default=900, gt=0, description="a pass or measurement running longer fails")
    stall_s: float | None = Field(default=60, gt=0, description="a worker making no CPU progress this long is stopped "
                                  "(a deadlock); null: never")
    memory_limit_mb: float | None = Field(default=None, gt=0, description="a worker holding more resident memory is "
                                          "stopped as out of memory; null: no limit")


class GateOverrides(_Strict):
    policy: str = "default"
    accuracy_retained: float | None = Field(default=None, gt=0)
    speedup: float | None = Field(default=None, gt=0)
    memory_cut: float | None = Field(default=None, lt=1)
    memory_basis: Literal["peak_rss", "size"] | None = None


class SearchSpec(_Strict):
    strategy: Literal["exhaustive", "cheap-first"] = Field(
        default="exhaustive",
        description="exhaustive: every candidate of the space; cheap-first: cheapest passes first, skip what can only "
        "buy back accuracy already kept and what repeats an option that lost on a similar pair, stop once one "
        "candidate passes every gate")
    max_candidates: int | None = Field(default=None, ge=1, description="evaluate at most this many candidates")
    time_budget_s: float | None = Field(default=None, gt=0, description="start no new candidate after this")
    frameworks: list[str] | None = Field(
        default=None, description="frameworks to search (default: every installed one that fits the target)")
    only: list[str] | None = Field(
        default=None, min_length=1, description="evaluate only these steps (ids as `edgeopt plan` prints them) and "
        "the steps whose models they read; the baseline always runs")


class PackageSpec(_Strict):
    notes: list[str] = Field(default_factory=list, description="pre/post-processing notes for whoever deploys it")
    labels: list[str] | str | None = Field(
        default=None, description="class names, in output order: a list, or a text file with one per line "
        "(default for an image folder with class sub-folders: their names)")
    image: ImageSteps | None = Field(
        default=None, description="the image preprocessing, for data a hook prepares (an image folder's own "
        "size/channels/mean/std/scale are used otherwise)")

    @field_validator("labels")
    @classmethod
    def _labels_file(cls, value, info):
        return _resolve_relative(value, info) if isinstance(value, str) else value


class LlmSpec(_Strict):
    """How a causal language model is measured (model.task: causal-lm)."""

    context_length: int = Field(default=512, ge=16, description="tokens per perplexity window and the runtime context")
    eval_tokens: int = Field(default=1024, ge=32, description="tokens of evaluation.data scored for perplexity")
    prompts: list[str] = Field(
        default_factory=lambda: ["Write a short note about the weather in spring.",
                                 "Explain in two sentences what a compiler does."],
        min_length=1, description="prompts timed for time to first token and tokens/s")
    max_new_tokens: int = Field(default=32, ge=2, description="tokens generated per timed prompt (greedy)")
    repeats: int = Field(default=1, ge=1, description="(kept for older manifests; timing rounds come from "
                         "measure.rounds: each window generates every prompt once)")


class OutputSpec(_Strict):
    dir: str | None = Field(default=None, description="default: out/<target> beside the manifest")

    _resolve = field_validator("dir")(_resolve_relative)


class Manifest(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    description: str = ""
    model: ModelSource
    inputs: list[InputSpec] = Field(default_factory=list, description="only inputs whose batch axis or value the "
                                    "model's declaration does not give; the rest are read from the ONNX model")
    evaluation: EvaluationSpec
    calibration: CalibrationSpec = CalibrationSpec()
    target: str = "host"
    gates: GateOverrides = GateOverrides()
    prefer: Literal["latency", "memory", "size", "accuracy"] = "latency"
    measure: MeasureSpec = MeasureSpec()
    search: SearchSpec = SearchSpec()
    llm: LlmSpec = LlmSpec()
    package: PackageSpec = PackageSpec()
    output: OutputSpec = OutputSpec()
    base_dir: str = Field(default=".", description="set by the loader: the manifest's folder")


def load_manifest(path: str | Path) -> Manifest:
    path = Path(path)
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise ManifestError(str(path), "", "expected a mapping of keys (name, model, evaluation, ...)")
    if "base_dir" in data:
        raise ManifestError(str(path), "base_dir", "is set by edgeopt, not by the manifest")
    base_dir = path.resolve().parent
    manifest = validate_model(Manifest, {**data, "base_dir": str(base_dir)}, str(path), {"base_dir": base_dir})
    check_metric(manifest, str(path))
    return manifest


def check_metric(manifest: Manifest, file: str) -> None:
    """What the metric needs, asked of the metric registry."""
    metric = METRICS[manifest.evaluation.metric.name]
    if metric.needs_decode and not manifest.evaluation.metric.decode:
        raise ManifestError(file, "evaluation.metric.decode", f"{metric.name} needs a decode hook `module:function`")
    task = manifest.model.task
    by_runtime = [m.name for m in METRICS.values() if m.computed_by_runtime and task in (m.tasks or ())]
    if by_runtime and metric.name not in by_runtime:
        raise ManifestError(file, "evaluation.metric.name", f"a {task} is judged by {' or '.join(by_runtime)}",
                            by_runtime)
    if by_runtime and manifest.evaluation.data.type != "text":
        raise ManifestError(file, "evaluation.data.type", f"a {task} is evaluated on a text file", ["text"])
    if metric.tasks is not None and task not in metric.tasks:
        raise ManifestError(file, "evaluation.metric.name",
                            f"{metric.name} is for model.task {' or '.join(metric.tasks)}")
    if metric.computed_by_runtime and task not in (metric.tasks or ()):
        raise ManifestError(file, "evaluation.metric.name", f"{metric.name} is computed by a language-model runtime")


def manifest_schema() -> str:
    schema = Manifest.model_json_schema()
    schema["properties"].pop("base_dir", None)
    return json.dumps(schema, indent=2)


def resolve_path(value: str) -> Path:
    """`pkg:module/sub/path` → the folder of an installed package; anything else as it is."""
    if not value.startswith("pkg:"):
        return Path(value)
    module, _, rest = value[4:].partition("/")
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        from edgeopt.errors import MissingDependency

        raise MissingDependency(f"package {module!r} (named by {value})", f"pip install {module.replace('_', '-')}")
    return Path(list(spec.submodule_search_locations)[0]) / rest
