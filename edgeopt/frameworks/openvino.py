"""OpenVINO + NNCF: ONNX → IR (fp32, fp16-compressed), NNCF post-training quantization (plain and
accuracy-controlled), weight compression, runtime hints; the OpenVINO runner; IR packaging."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from edgeopt.artifact import ModelArtifact
from edgeopt.frameworks.common import files_beside, fresh_dir, lineage_entry, probe_distribution, with_runtime_settings
from edgeopt.passes import Pass, PassConfig, PassContext

INSTALL = "pip install 'edgeopt[openvino]'"
MODEL_XML, MODEL_BIN = "model.xml", "model.bin"


def _silence_telemetry() -> None:
    """OpenVINO tools and NNCF send usage analytics unless a consent file in the user's home says "0";
    with no file at all they count as consenting. Rather than write that file into the user's home,
    every edgeopt worker tells the consent check there is no home to look in: consent is then declined."""
    os.environ.setdefault("NNCF_CI", "1")  # NNCF swaps its telemetry for a stub when this is set
    try:
        from openvino_telemetry.utils.opt_in_checker import OptInChecker
    except ImportError:  # no telemetry package: nothing to silence
        return
    OptInChecker.consent_file_base_dir = staticmethod(lambda: None)


def _ov():
    from edgeopt.errors import MissingDependency

    _silence_telemetry()
    try:
        import openvino
    except ImportError:
        raise MissingDependency("openvino", INSTALL) from None
    return openvino


def _nncf():
    from edgeopt.errors import MissingDependency

    _ov()
    try:
        import nncf
    except ImportError:
        raise MissingDependency("nncf", INSTALL) from None
    return nncf


def _ir_artifact(source: ModelArtifact, xml: Path, context: PassContext, pass_name: str, config: PassConfig,
                 precision: str, notes: dict | None = None) -> ModelArtifact:
    return ModelArtifact(path=str(xml), files=(MODEL_BIN,), format="openvino-ir", framework="openvino",
                         precision=precision, lineage=(*source.lineage, lineage_entry(context, pass_name, config, notes)))


def _save(model, folder: Path, compress_to_fp16: bool = False) -> Path:
    ov = _ov()
    xml = fresh_dir(folder) / MODEL_XML
    ov.save_model(model, str(xml), compress_to_fp16=compress_to_fp16)  # the default would compress
    return xml


# -- passes -------------------------------------------------------------------------------------------
class ConvertConfig(PassConfig):
    compress_to_fp16: bool = Field(default=False, description="store weights as fp16 (the CPU still computes in fp32)")


class Convert(Pass):
    name = "convert"
    Config = ConvertConfig
    summary = "ONNX → OpenVINO IR"

    def apply(self, config: ConvertConfig, artifact: ModelArtifact, context: PassContext) -> ModelArtifact:
        ov = _ov()
        if artifact.format != "onnx":
            raise ValueError(f"openvino.convert takes an ONNX model, got {artifact.format}")
        model = ov.convert_model(artifact.path)
        xml = _save(model, context.output_dir, config.compress_to_fp16)
        return _ir_artifact(artifact, xml, context, f"openvino.{self.name}", config,
                            "fp16-weights" if config.compress_to_fp16 else "fp32")


class IgnoredScope(PassConfig):
    names: list[str] = []
    patterns: list[str] = []
    types: list[str] = []


class QuantizeConfig(PassConfig):
    preset: Literal["performance", "mixed"] = Field(
        default="performance", description="performance: symmetric activations; mixed: asymmetric (for ReLU-free models)")
    model_type: Literal["auto", "transformer", "none"] = Field(
        default="auto", description="auto: transformer for embedding models, none otherwise")
    subset_size: int = Field(default=300, ge=1, description="calibration samples NNCF uses")
    fast_bias_correction: bool = True
    ignored_scope: IgnoredScope = IgnoredScope()


class Quantize(Pass):
    name = "quantize"
    Config = QuantizeConfig
    needs_calibration = True
    cost = 3
    summary = "NNCF post-training quantization (int8 weights and activations)"

    def apply(self, config: QuantizeConfig, artifact: ModelArtifact, context: PassContext) -> ModelArtifact:
        nncf = _nncf()
        model = _read(artifact)
        samples = _feeds(context.calibration_data, model)
        quantized = nncf.quantize(model, nncf.Dataset(samples), **_quantize_options(nncf, config, context, len(samples)))
        xml = _save(quantized, context.output_dir)
        return _ir_artifact(artifact, xml, context, f"openvino.{self.name}", config, "int8",
                            notes={"calibration_samples": min(len(samples), config.subset_size),
                                   **_count_fake_quantize(quantized)})


def _quantize_options(nncf, config: QuantizeConfig, context: PassContext, samples: int) -> dict:
    model_type = config.model_type
    if model_type == "auto":
        model_type = "transformer" if context.extra.get("task") == "embedding" else "none"
    scope = config.ignored_scope
    return {
        "preset": nncf.QuantizationPreset.PERFORMANCE if config.preset == "performance" else nncf.QuantizationPreset.MIXED,
        "model_type": nncf.ModelType.TRANSFORMER if model_type == "transformer" else None,
        "subset_size": min(config.subset_size, samples),
        "fast_bias_correction": config.fast_bias_correction,
        "ignored_scope": nncf.IgnoredScope(names=scope.names, patterns=scope.patterns, types=scope.types)
        if (scope.names or scope.patterns or scope.types) else None,
    }


class AccuracyControlConfig(QuantizeConfig):
    max_drop: float = Field(default=0.05, gt=0, lt=1, description="relative drop of the manifest's metric allowed "
                            "(recipes set it from the accuracy gate)")
    validation_samples: int = Field(default=256, ge=8, description="evaluation samples NNCF validates on")
    max_num_iterations: int = Field(default=30, ge=1)


class QuantizeWithAccuracyControl(Pass):
    name = "quantize_with_accuracy_control"
    Config = AccuracyControlConfig
    needs_calibration = True
    needs_validation = True
    cost = 4
    summary = "NNCF int8, then layers reverted to float until the accuracy drop is within max_drop"

    def apply(self, config: AccuracyControlConfig, artifact: ModelArtifact, context: PassContext) -> ModelArtifact:
        nncf = _nncf()
        from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters

        from edgeopt.measure import metrics
        from edgeopt.worker import LABELS_KEY

        model = _read(artifact)
        calibration = _feeds(context.calibration_data, model)
        validation = _feeds(context.validation_data, model, limit=config.validation_samples)
        metric = context.extra["metric"]
        with np.load(context.validation_data) as data:
            labels = data[LABELS_KEY][: len(validation)] if LABELS_KEY in data.files else None
        reference = np.load(context.extra["reference_outputs"])[: len(validation)] if context.extra.get("reference_outputs") else None
        output = metric["output"]
        higher = metrics.HIGHER_IS_BETTER[metric["name"]]

        def score(outputs: np.ndarray, positions: list[int]) -> float:
            part = metrics.compute(metric, outputs, None if labels is None else labels[positions],
                                   None if reference is None else reference[positions])
            return part["score"] if higher else -part["score"]  # NNCF takes higher as better

        def validate(compiled, items):
            # items are (position, feeds): NNCF validates on subsets, and labels follow the position
            index = _output_index(compiled, output)
            positions, outputs = [], []
            for position, feeds in items:
                positions.append(position)
                outputs.append(compiled(feeds)[index])
            per_item = [score(o, [p]) for p, o in zip(positions, outputs)]
            return score(np.concatenate(outputs), positions), per_item

        options = _quantize_options(nncf, config, context, len(calibration))
        numbered = list(enumerate(validation))
        if higher:
            drop, drop_type = config.max_drop, nncf.DropType.RELATIVE
        else:  # lower-is-better (error) metrics: the gate's relative limit as an absolute drop of -error
            base_error = -validate(_ov().Core().compile_model(model, "CPU"), numbered)[0]
            drop, drop_type = max(base_error * (1 / (1 - config.max_drop) - 1), 1e-6), nncf.DropType.ABSOLUTE
        with _captured("nncf") as log:
            quantized = nncf.quantize_with_accuracy_control(
                model, nncf.Dataset(calibration), nncf.Dataset(numbered, lambda item: item[1]), validate, max_drop=drop,
                drop_type=drop_type, advanced_accuracy_restorer_parameters=AdvancedAccuracyRestorerParameters(
                    max_num_iterations=config.max_num_iterations), **options)
        reverted, completion = _reverted_operations(log)
        xml = _save(quantized, context.output_dir)
        precision = "int8-mixed" if reverted else "int8"  # mixed only when layers went back to float
        return _ir_artifact(artifact, xml, context, f"openvino.{self.name}", config, precision,
                            notes={"reverted_to_float": reverted, "reverted_count": len(reverted),
                                   "nncf": completion, "max_drop": drop, "drop_type": drop_type.value,
                                   **_count_fake_quantize(quantized)})


class CompressWeightsConfig(PassConfig):
    mode: Literal["int8_asym", "int8_sym", "int4_sym", "int4_asym"] = "int8_asym"
    group_size: int | None = Field(default=None, description="int4 only: weights per scale (e.g. 64, 128)")
    ratio: float | None = Field(default=None, gt=0, le=1, description="int4 only: share of layers in int4 (rest int8)")
    all_layers: bool = Field(default=False, description="int4 only: also the first and last layers")


class CompressWeights(Pass):
    name = "compress_weights"
    Config = CompressWeightsConfig
    summary = "weight-only compression of MatMul/embedding weights (activations stay float)"

    def apply(self, config: CompressWeightsConfig, artifact: ModelArtifact, context: PassContext) -> ModelArtifact:
        nncf = _nncf()
        options = {"mode": getattr(nncf.CompressWeightsMode, config.mode.upper())}
        if config.mode.startswith("int4"):
            options.update({k: v for k, v in (("group_size", config.group_size), ("ratio", config.ratio)) if v is not None})
            options["all_layers"] = config.all_layers
        compressed = nncf.compress_weights(_read(artifact), **options)
        xml = _save(compressed, context.output_dir)
        return _ir_artifact(artifact, xml, context, f"openvino.{self.name}", config,
                            f"{config.mode.split('_')[0]}-weights")


class RuntimeConfig(PassConfig):
    performance_hint: Literal["latency", "throughput"] = "latency"
    inference_num_threads: int | None = Field(default=None, ge=1)
    num_streams: int | None = Field(default=None, ge=1)


class Runtime(Pass):
    name = "runtime"
    Config = RuntimeConfig
    cost = 0
    summary = "OpenVINO runtime configuration (performance hint, threads, streams); the IR is unchanged"

    def apply(self, config: RuntimeConfig, artifact: ModelArtifact, context: PassContext) -> ModelArtifact:
        return with_runtime_settings(artifact, config, context, f"openvino.{self.name}")


# -- helpers ------------------------------------------------------------------------------------------
def _read(artifact: ModelArtifact):
    ov = _ov()
    if artifact.format != "openvino-ir":
        raise ValueError(f"expected an OpenVINO IR, got {artifact.format}: put openvino.convert first")
    return ov.Core().read_model(artifact.path)


def _feeds(npz_path: Path, model, limit: int | None = None) -> list[dict[str, np.ndarray]]:
    """One feed per sample, named and typed as the model's inputs."""
    with np.load(npz_path) as data:
        arrays = {}
        for port in model.inputs:
            name = port.get_any_name()
            if name not in data.files:
                raise KeyError(f"the data has no array for model input {name!r}; it has {sorted(data.files)}")
            arrays[name] = data[name].astype(port.get_element_type().to_dtype(), copy=False)
    count = len(next(iter(arrays.values())))
    count = min(count, limit) if limit else count
    return [{name: array[i:i + 1] for name, array in arrays.items()} for i in range(count)]


def _output_index(compiled, output) -> int:
    if isinstance(output, int):
        return output
    names = [o.get_any_name() for o in compiled.outputs]
    return names.index(output)


def _count_fake_quantize(model) -> dict:
    ops = [op.get_type_name() for op in model.get_ops()]
    return {"fake_quantize_nodes": ops.count("FakeQuantize"), "nodes": len(ops)}


class _captured:
    """Collects one logger's messages (NNCF reports reverted layers only in its log)."""

    def __init__(self, logger: str):
        self.logger, self.messages = logging.getLogger(logger), []

    def __enter__(self):
        class Handler(logging.Handler):
            def emit(inner, record):
                self.messages.append(record.getMessage())

        self.handler = Handler(logging.INFO)
        self.logger.addHandler(self.handler)
        return self.messages

    def __exit__(self, *exc):
        self.logger.removeHandler(self.handler)


def _reverted_operations(messages: list[str]) -> tuple[list[str], str]:
    reverted = []
    for message in messages:
        # "Reverted N operations to the floating-point precision:" per step, then a summary unless all were
        if message.startswith("Reverted ") or "were reverted back to the floating-point precision" in message:
            reverted += [line.strip() for line in message.splitlines()[1:] if line.strip()]
    reverted = list(dict.fromkeys(reverted))
    completion = next((m.splitlines()[0] for m in reversed(messages)
                       if any(word in m.lower() for word in ("accuracy drop", "algorithm completed", "could not achieve"))), "")
    return reverted, completion


# -- the runner ---------------------------------------------------------------------------------------
_HINTS = {"latency": "LATENCY", "throughput": "THROUGHPUT"}


class OpenVinoSession:
    def __init__(self, artifact: ModelArtifact, threads: int | None):
        ov = _ov()
        runtime = artifact.runtime_config
        config = {"PERFORMANCE_HINT": _HINTS[runtime.get("performance_hint", "latency")]}
        threads = runtime.get("inference_num_threads", threads)
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        if runtime.get("num_streams"):
            config["NUM_STREAMS"] = int(runtime["num_streams"])
        self._compiled = ov.Core().compile_model(artifact.path, "CPU", config)
        self._request = self._compiled.create_infer_request()
        self.inputs = [(p.get_any_name(), p.get_partial_shape(), p.get_element_type().to_dtype())
                       for p in self._compiled.inputs]
        self.output_names = [o.get_any_name() for o in self._compiled.outputs]
        self.threads = self._compiled.get_property("INFERENCE_NUM_THREADS")

    def fixed_batch(self) -> int | None:
        shape = self.inputs[0][1] if self.inputs else None
        return shape[0].get_length() if shape is not None and shape.rank.is_static and len(shape) and shape[0].is_static else None

    def feeds(self, arrays: dict[str, np.ndarray], start: int, stop: int) -> dict[str, np.ndarray]:
        missing = [name for name, _, _ in self.inputs if name not in arrays]
        if missing:
            raise KeyError(f"the data has no array for model input(s) {missing}; it has {sorted(arrays)}")
        return {name: np.ascontiguousarray(arrays[name][start:stop].astype(dtype, copy=False))
                for name, _, dtype in self.inputs}

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        results = self._request.infer(feeds)
        return [results[output] for output in self._compiled.outputs]


class OpenVinoAdapter:
    name = "openvino"
    install = INSTALL
    passes = {p.name: p for p in (Convert, Quantize, QuantizeWithAccuracyControl, CompressWeights, Runtime)}
    package_format = "openvino-ir"

    def probe(self):
        return probe_distribution("openvino", "nncf", import_name="openvino")

    def runtime_versions(self) -> dict[str, str]:
        return {"openvino": _ov().__version__.split("-")[0]}

    def load(self, artifact: ModelArtifact, threads: int | None) -> OpenVinoSession:
        return OpenVinoSession(artifact, threads)

    def size_bytes(self, artifact: ModelArtifact) -> int:
        return sum(os.path.getsize(p) for p in artifact.all_paths())

    def layer_outputs(self, artifact: ModelArtifact, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The output of every computing operation, by its friendly name (NNCF keeps those names and
        inserts FakeQuantize beside them), in fp32 inference precision."""
        ov = _ov()
        model = _read(artifact)
        skip = {"Parameter", "Constant", "Result", "FakeQuantize", "Convert", "ShapeOf", "Reshape", "Squeeze",
                "Unsqueeze", "Gather", "Concat", "Broadcast", "Transpose"}
        ops = [op for op in model.get_ordered_ops() if op.get_type_name() not in skip and op.get_output_size() == 1
               and op.get_output_element_type(0).is_real()]
        first_added = len(model.outputs)
        model.add_outputs([op.output(0) for op in ops])
        compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        request = compiled.create_infer_request()
        inputs = [(p.get_any_name(), p.get_element_type().to_dtype()) for p in compiled.inputs]
        count = len(next(iter(arrays.values())))
        collected: dict[str, list] = {op.get_friendly_name(): [] for op in ops}
        for i in range(count):
            results = request.infer({name: arrays[name][i:i + 1].astype(dtype) for name, dtype in inputs})
            for op, port in zip(ops, compiled.outputs[first_added:]):
                collected[op.get_friendly_name()].append(np.array(results[port], dtype=np.float32))
        return {name: np.stack(parts) for name, parts in collected.items() if len({p.shape for p in parts}) == 1}

    # -- packaging --------------------------------------------------------------------------------
    def package_files(self, artifact: ModelArtifact) -> dict[str, Path]:
        return files_beside(artifact)

    def package_entry(self, artifact: ModelArtifact) -> str:
        return Path(artifact.path).name

    def runtime_requirement(self, built_with: dict[str, str]) -> dict:
        version = built_with.get("openvino") or _ov().__version__.split("-")[0]
        year, release = (int(x) for x in version.split(".")[:2])
        # IR v11 written by this release loads in this and later releases
        return {"package": "openvino", "version_range": f">={year}.{release}", "measured_with": version,
                "install": f"pip install 'openvino>={year}.{release}' numpy"}

    def io_spec(self, artifact: ModelArtifact) -> dict:
        model = _read(artifact)

        def describe(port) -> dict:
            shape = port.get_partial_shape()
            dims = [d.get_length() if d.is_static else "?" for d in shape] if shape.rank.is_static else "?"
            return {"name": port.get_any_name(), "dtype": port.get_element_type().to_dtype().name, "shape": dims}

        return {"inputs": [describe(p) for p in model.inputs], "outputs": [describe(p) for p in model.outputs]}

    def example_script(self) -> str:
        from importlib.resources import files

        return (files("edgeopt.frameworks") / "examples" / "openvino_example.py").read_text()


ADAPTER = OpenVinoAdapter()
