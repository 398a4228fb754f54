"""OpenVINO's passes: ONNX → IR, NNCF int8 (plain and accuracy-controlled), weight compression, static
shapes, and the runtime settings (hint, threads, streams, inference precision)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from edgeopt.artifact import ModelArtifact
from edgeopt.frameworks.base import runtime_settings_pass
from edgeopt.frameworks.common import fresh_dir, timed_shapes
from edgeopt.frameworks.openvino.runtime import (
    MODEL_BIN,
    MODEL_XML,
    compile_options,
    nncf,
    ov,
    read_ir,
)
from edgeopt.passes import Pass, PassConfig, PassContext

Execution = Literal["f32", "bf16", "f16"]


def _ir_artifact(source: ModelArtifact, xml: Path, context: PassContext, pass_name: str, config: PassConfig,
                 precision: str, notes: dict | None = None) -> ModelArtifact:
    # the runtime settings of the input (its inference precision) carry over: the IR changed, not how it runs
    return ModelArtifact(path=str(xml), files=(MODEL_BIN,), format="openvino-ir", framework="openvino",
                         precision=precision, runtime_config=dict(source.runtime_config),
                         lineage=(*source.lineage, context.lineage(pass_name, config, notes)))


def _save(model, folder: Path, compress_to_fp16: bool = False) -> Path:
    xml = fresh_dir(folder) / MODEL_XML
    ov().save_model(model, str(xml), compress_to_fp16=compress_to_fp16)  # the default would compress
    return xml


class ConversionFailed(RuntimeError):
    """OpenVINO's converter refused operators: the first line names them, OpenVINO's own text follows."""


def _convert(path: str):
    try:
        return ov().convert_model(path)
    except Exception as exc:  # noqa: BLE001 - OpenVINO's OpConversionFailure and friends have no common public base
        unsupported = unconverted_operators(str(exc))
        if not unsupported:
            raise
        raise ConversionFailed(f"OpenVINO cannot convert {len(unsupported)} operator type(s): "
                               f"{', '.join(unsupported)}\n{exc}") from None


def unconverted_operators(message: str) -> list[str]:
    """The operators OpenVINO's frontend lists in its summary ("-- No conversion rule found for operations:
    a, b" and "-- Conversion is failed for: c"), which it prints below a first line that names none."""
    found: list[str] = []
    for line in message.splitlines():
        head, colon, names = line.strip().partition(":")
        if colon and head.startswith("--") and ("conversion rule" in head or "onversion is failed" in head):
            found += [n.strip() for n in names.split(",") if n.strip() and n.strip() not in found]
    return found


class ConvertConfig(PassConfig):
    compress_to_fp16: bool = Field(default=False, description="store weights as fp16 (the CPU still computes in f32)")
    execution: Execution = Field(default="f32", description="the inference precision the runtime is told to use")


class Convert(Pass):
    name = "convert"
    Config = ConvertConfig
    summary = "ONNX → OpenVINO IR, with the inference precision stated"

    def apply(self, config: ConvertConfig, artifact: ModelArtifact, context: PassContext) -> ModelArtifact:
        if artifact.format != "onnx":
            raise ValueError(f"openvino.convert takes an ONNX model, got {artifact.format}")
        xml = _save(_convert(artifact.path), context.output_dir, config.compress_to_fp16)
        stored = "fp16-weights" if config.compress_to_fp16 else "fp32"
        precision = stored if config.execution == "f32" else f"{stored}-{config.execution}-exec"
        converted = _ir_artifact(artifact.model_copy(update={"runtime_config": {}}), xml, context,
                                 f"openvino.{self.name}", config, precision)
        return converted.model_copy(update={"runtime_config": {"inference_precision": config.execution}})


class ReshapeConfig(PassConfig):
    """No settings: every dynamic input dimension takes its size in the batch the build times."""


class Reshape(Pass):
    name = "reshape"
    Config = ReshapeConfig
    needs_timing_data = True
    summary = "every dynamic input dimension fixed to the timed batch's (OpenVINO's Model.reshape): a static model"

    def apply(self, config: ReshapeConfig, artifact: ModelArtifact, context: PassContext) -> ModelArtifact:
        model = read_ir(artifact)
        dynamic = [port.get_any_name() for port in model.inputs if port.get_partial_shape().is_dynamic]
        fixed = timed_shapes(context.timing_data, dynamic, f"openvino.{self.name}")
        model.reshape({name: ov().PartialShape(shape) for name, shape in fixed.items()})
        xml = _save(model, context.output_dir)
        return _ir_artifact(artifact, xml, context, f"openvino.{self.name}", config, artifact.precision,
                            {"fixed_shapes": fixed})


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
    keep_float: int = Field(default=0, ge=0, description=(
        "leave in float the MatMul/Convolution nodes int8 hurts most, this many (NNCF's ignored scope), ranked as "
        "ONNX Runtime's mixed precision ranks them: outlier ratios of each node's activation input on calibration "
        "samples and of its weights"))


class Quantize(Pass):
    name = "quantize"
    lowers_precision = True
    Config = QuantizeConfig
    needs_calibration = True
    cost = 3
    summary = "NNCF post-training quantization (int8 weights and activations)"

    def apply(self, config: QuantizeConfig, artifact: ModelArtifact, context: PassContext) -> ModelArtifact:
        lib = nncf()
        model = read_ir(artifact)
        samples = _feeds(context.calibration_data, model)
        config, kept = _keeping_float(config, artifact, samples)
        quantized = lib.quantize(model, lib.Dataset(samples), **_quantize_options(lib, config, context, len(samples)))
        xml = _save(quantized, context.output_dir)
        notes = {"calibration_samples": min(len(samples), config.subset_size), "kept_float": kept,
                 **_count_fake_quantize(quantized)}
        return _ir_artifact(artifact, xml, context, f"openvino.{self.name}", config,
                            "int8-mixed" if kept else "int8", notes=notes)


SENSITIVITY_SAMPLES = 8  # as ONNX Runtime's mixed precision: enough for each activation's peak against its rms
_WEIGHTED_OPS = ("MatMul", "Convolution")


def _keeping_float(config: QuantizeConfig, artifact: ModelArtifact, samples: list[dict]):
    """The config with the `keep_float` nodes int8 hurts most added to its ignored scope, and their names."""
    if not config.keep_float:
        return config, []
    kept = _most_harmful(artifact, samples[:SENSITIVITY_SAMPLES], config.keep_float)
    scope = config.ignored_scope
    names = [*scope.names, *(name for name in kept if name not in scope.names)]
    return config.model_copy(update={"ignored_scope": scope.model_copy(update={"names": names})}), kept


def _most_harmful(artifact: ModelArtifact, samples: list[dict], count: int) -> list[str]:
    """The friendly names of the `count` MatMul/Convolution nodes with constant weights that int8 hurts most
    (edgeopt.measure.diagnosis.quantization_sensitivity, on the float model's activations): NNCF's ignored scope."""
    from edgeopt.measure.diagnosis import quantization_sensitivity
    from edgeopt.passes import NothingToDo

    model = read_ir(artifact)  # a copy of its own: extra outputs are added to read the activations
    weighted = [(op, weights) for op in model.get_ordered_ops() if op.get_type_name() in _WEIGHTED_OPS
                if (weights := _constant_weights(op)) is not None]
    if not weighted:
        return []
    if count >= len(weighted):
        raise NothingToDo(f"quantized no node: keeping {count} in float leaves none of the model's {len(weighted)} "
                          "MatMul/Convolution nodes in int8")
    activations = _input_activations(model, [op for op, _ in weighted], samples)
    nodes = [(op.get_friendly_name(), op.get_friendly_name(), weights) for op, weights in weighted]
    return [name for name, _ in quantization_sensitivity(nodes, activations, {
        op.get_friendly_name(): _output_channel_axis(op) for op, _ in weighted})[:count]]


def _constant_weights(op) -> np.ndarray | None:
    """The weights of a MatMul/Convolution when they are a constant (through the Convert of a compressed IR)."""
    node = op.input_value(1).get_node()
    if node.get_type_name() == "Convert":
        node = node.input_value(0).get_node()
    if node.get_type_name() != "Constant":
        return None
    return np.asarray(node.get_data(), dtype=np.float32)


def _output_channel_axis(op) -> int:
    """NNCF scales weights per output channel: a Convolution's first axis; a MatMul's last, or the one before it
    when the weights are transposed."""
    if op.get_type_name() == "MatMul":
        return -2 if op.get_attributes().get("transpose_b") else -1
    return 0


def _input_activations(model, ops: list, samples: list[dict]) -> dict[str, np.ndarray]:
    """Each op's activation input (its first) on the samples, flattened and joined, by the op's friendly name."""
    # ops that read one tensor (a layer's query, key and value projections) get one Result between them: each op
    # finds its own by the Result add_outputs answered with, not by counting
    added = model.add_outputs([op.input_value(0) for op in ops])
    position = {result.get_node().get_friendly_name(): i for i, result in enumerate(model.outputs)}
    where = [position[result.get_node().get_friendly_name()] for result in added]
    compiled = ov().Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    collected: dict[str, list] = {op.get_friendly_name(): [] for op in ops}
    for feed in samples:
        results = request.infer(feed)
        for op, index in zip(ops, where):
            collected[op.get_friendly_name()].append(
                np.asarray(results[compiled.outputs[index]], dtype=np.float32).reshape(-1))
    return {name: np.concatenate(values) for name, values in collected.items() if values}


def _quantize_options(lib, config: QuantizeConfig, context: PassContext, samples: int) -> dict:
    model_type = config.model_type
    if model_type == "auto":
        model_type = "transformer" if context.task == "embedding" else "none"
    scope = config.ignored_scope
    return {
        "preset": lib.QuantizationPreset.PERFORMANCE if config.preset == "performance" else lib.QuantizationPreset.MIXED,
        "model_type": lib.ModelType.TRANSFORMER if model_type == "transformer" else None,
        "subset_size": min(config.subset_size, samples),
        "fast_bias_correction": config.fast_bias_correction,
        "ignored_scope": lib.IgnoredScope(names=scope.names, patterns=scope.patterns, types=scope.types)
        if (scope.names or scope.patterns or scope.types) else None,
    }


class AccuracyControlConfig(QuantizeConfig):
    max_drop: float = Field(default=0.05, gt=0, lt=1, description="relative drop of the manifest's metric allowed "
                            "(recipes set it from the accuracy gate)")
    validation_samples: int = Field(default=256, ge=8, description="evaluation samples NNCF validates on")
    max_num_iterations: int = Field(default=30, ge=1)


class QuantizeWithAccuracyControl(Pass):
    name = "quantize_with_accuracy_control"
    lowers_precision = True
    Config = AccuracyControlConfig
    needs_calibration = True
    needs_validation = True
    cost = 4
    summary = "NNCF int8, then layers reverted to float until the accuracy drop is within max_drop"

    def apply(self, config: AccuracyControlConfig, artifact: ModelArtifact, context: PassContext) -> ModelArtifact:
        lib = nncf()
        from nncf.quantization.advanced_parameters import (
            AdvancedAccuracyRestorerParameters,
        )

        from edgeopt.datafiles import load_arrays
        from edgeopt.measure.metrics import metric as metric_named

        model = read_ir(artifact)
        validation = context.validation
        calibration = _feeds(context.calibration_data, model)
        config, kept = _keeping_float(config, artifact, calibration)  # where NNCF's own restoring starts from
        samples = _feeds(Path(validation.data), model, limit=config.validation_samples)
        _, labels = load_arrays(validation.data, limit=len(samples))
        reference = np.load(validation.reference_outputs)[: len(samples)] if validation.reference_outputs else None
        spec = validation.metric.model_dump()
        metric = metric_named(spec["name"])

        def score(outputs: np.ndarray, positions: list[int]) -> float:
            part = metric.evaluate(spec, outputs, None if labels is None else labels[positions],
                                   None if reference is None else reference[positions])
            return part["score"] if metric.higher_is_better else -part["score"]  # NNCF takes higher as better

        def validate(compiled, items):
            # items are (position, feeds): NNCF validates on subsets, and labels follow the position
            index = _output_index(compiled, spec["output"])
            positions, outputs = [], []
            for position, feeds in items:
                positions.append(position)
                outputs.append(compiled(feeds)[index])
            per_item = [score(o, [p]) for p, o in zip(positions, outputs)]
            return score(np.concatenate(outputs), positions), per_item

        options = _quantize_options(lib, config, context, len(calibration))
        numbered = list(enumerate(samples))
        if metric.higher_is_better:
            drop, drop_type = config.max_drop, lib.DropType.RELATIVE
        else:  # lower-is-better (error) metrics: the gate's relative limit as an absolute drop of -error
            compiled = ov().Core().compile_model(model, "CPU", compile_options(artifact.runtime_config, None))
            base_error = -validate(compiled, numbered)[0]
            drop, drop_type = max(base_error * (1 / (1 - config.max_drop) - 1), 1e-6), lib.DropType.ABSOLUTE
        with _captured("nncf") as log:
            quantized = lib.quantize_with_accuracy_control(
                model, lib.Dataset(calibration), lib.Dataset(numbered, lambda item: item[1]), validate, max_drop=drop,
                drop_type=drop_type, advanced_accuracy_restorer_parameters=AdvancedAccuracyRestorerParameters(
                    max_num_iterations=config.max_num_iterations), **options)
        reverted, completion = reverted_operations(log)
        xml = _save(quantized, context.output_dir)
        precision = "int8-mixed" if reverted or kept else "int8"  # mixed only when layers stayed or went float
        return _ir_artifact(artifact, xml, context, f"openvino.{self.name}", config, precision,
                            notes={"kept_float": kept, "reverted_to_float": reverted, "reverted_count": len(reverted),
                                   "nncf": completion, "max_drop": drop, "drop_type": drop_type.value,
                                   **_count_fake_quantize(quantized)})


class CompressWeightsConfig(PassConfig):
    mode: Literal["int8_asym", "int8_sym", "int4_sym", "int4_asym"] = "int8_asym"
    group_size: int | None = Field(default=None, description="int4 only: weights per scale (e.g. 64, 128)")
    ratio: float | None = Field(default=None, gt=0, le=1, description="int4 only: share of layers in int4 (rest int8)")
    all_layers: bool = Field(default=False, description="int4 only: also the first and last layers")


class CompressWeights(Pass):
    name = "compress_weights"
    lowers_precision = True
    Config = CompressWeightsConfig
    summary = "weight-only compression of MatMul/embedding weights (activations stay float)"

    def apply(self, config: CompressWeightsConfig, artifact: ModelArtifact, context: PassContext) -> ModelArtifact:
        lib = nncf()
        options = {"mode": getattr(lib.CompressWeightsMode, config.mode.upper())}
        if config.mode.startswith("int4"):
            options.update({k: v for k, v in (("group_size", config.group_size), ("ratio", config.ratio)) if v is not None})
            options["all_layers"] = config.all_layers
        compressed = lib.compress_weights(read_ir(artifact), **options)
        xml = _save(compressed, context.output_dir)
        return _ir_artifact(artifact, xml, context, f"openvino.{self.name}", config,
                            f"{config.mode.split('_')[0]}-weights")


class RuntimeConfig(PassConfig):
    performance_hint: Literal["latency", "throughput"] = "latency"
    inference_num_threads: int | None = Field(default=None, ge=1)
    num_streams: int | None = Field(default=None, ge=1)
    inference_precision: Execution | None = Field(default=None, description="default: the input's")


_RuntimeSettings = runtime_settings_pass(
    "openvino", RuntimeConfig,
    summary="OpenVINO runtime configuration (performance hint, threads, streams); the IR is unchanged")


class Runtime(_RuntimeSettings):
    def apply(self, config: RuntimeConfig, artifact: ModelArtifact, context: PassContext) -> ModelArtifact:
        tuned = super().apply(config, artifact, context)
        # an unset precision keeps the one the input was told to run in, so tuning never changes it silently
        inherited = {k: v for k, v in artifact.runtime_config.items() if k == "inference_precision"}
        return tuned.model_copy(update={"runtime_config": {**inherited, **tuned.runtime_config}})


def _feeds(npz_path: Path, model, limit: int | None = None) -> list[dict[str, np.ndarray]]:
    """One feed per sample, named and typed as the model's inputs."""
    from edgeopt.datafiles import load_samples

    data = load_samples(npz_path, limit)
    ports = [(port.get_any_name(), port.get_element_type().to_dtype()) for port in model.inputs]

    def typed(given: dict) -> dict:
        missing = [name for name, _ in ports if name not in given]
        if missing:
            raise KeyError(f"the data has no array for model input(s) {missing}; it has {sorted(given)}")
        return {name: given[name].astype(dtype, copy=False) for name, dtype in ports}

    if not data.recurrent:
        return [typed(data.feed(i, i + 1)) for i in range(data.count)]
    # a streaming model is calibrated on the states the float model carries, not only on the initial one
    compiled = ov().Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()

    def run(feed: dict) -> dict:
        results = request.infer(typed(feed))
        return {port.get_any_name(): np.array(results[port]) for port in compiled.outputs}

    return [typed(feed) for feed, _ in data.in_order(run)]


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


def reverted_operations(messages: list[str]) -> tuple[list[str], str]:
    reverted = []
    for message in messages:
        # "Reverted N operations to the floating-point precision:" per step, then a summary unless all were
        if message.startswith("Reverted ") or "were reverted back to the floating-point precision" in message:
            reverted += [line.strip() for line in message.splitlines()[1:] if line.strip()]
    reverted = list(dict.fromkeys(reverted))
    completion = next((m.splitlines()[0] for m in reversed(messages)
                       if any(word in m.lower() for word in ("accuracy drop", "algorithm completed", "could not achieve"))), "")
    return reverted, completion



PASSES = {p.name: p for p in (Convert, Quantize, QuantizeWithAccuracyControl, CompressWeights, Reshape, Runtime)}
