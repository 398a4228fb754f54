"""ONNX Runtime's passes: offline graph optimization, dynamic and static int8, fp16, session settings."""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from edgeopt.artifact import ModelArtifact
from edgeopt.frameworks.base import runtime_settings_pass, runtime_values
from edgeopt.frameworks.common import fresh_dir, timed_shapes
from edgeopt.frameworks.onnxruntime.runtime import LEVELS, cast, ort
from edgeopt.passes import NothingToDo, Pass, PassConfig, PassContext

MODEL_FILE = "model.onnx"
WEIGHTED_OPS = ("MatMul", "Gemm", "Conv")  # what int8 computes in: where mixed precision leaves some in float
SENSITIVITY_SAMPLES = 8
QUANTIZED_OPS = ("MatMulInteger", "ConvInteger", "QLinearMatMul", "QLinearConv", "DynamicQuantizeMatMul",
                 "QuantizeLinear", "MatMulNBits", "QAttention", "QEmbedLayerNormalization")
# Hugging Face config model_type → the fusion recipe of ONNX Runtime's transformer optimizer that fits it
FUSION_MODEL_TYPES = {
    "bert": "bert", "roberta": "bert", "xlm-roberta": "bert", "distilbert": "bert", "electra": "bert",
    "mpnet": "bert", "camembert": "bert", "albert": "bert", "deberta": "bert", "deberta-v2": "bert",
    "gpt2": "gpt2", "gpt_neox": "gpt_neox", "bart": "bart", "t5": "t5", "vit": "vit", "swin": "swin",
    "clip": "clip", "phi": "phi",
}


def derive(artifact: ModelArtifact, path: Path, context: PassContext, pass_name: str, config: PassConfig,
           precision: str | None = None, notes: dict | None = None) -> ModelArtifact:
    return artifact.model_copy(update={
        "path": str(path), "files": (), "precision": precision or artifact.precision,
        "lineage": (*artifact.lineage, context.lineage(pass_name, config, notes)),
    })


class OptimizeConfig(PassConfig):
    level: Literal["basic", "extended"] = Field(
        default="basic", description="ORT_ENABLE_ALL is refused: its layouts are specific to the build CPU")


class Optimize(Pass):
    name = "optimize"
    Config = OptimizeConfig
    summary = "offline graph optimization, saved as a portable ONNX model"

    def apply(self, config: OptimizeConfig, artifact: ModelArtifact, context: PassContext) -> ModelArtifact:
        runtime = ort()
        out = fresh_dir(context.output_dir) / MODEL_FILE
        options = runtime.SessionOptions()
        options.graph_optimization_level = getattr(runtime.GraphOptimizationLevel, LEVELS[config.level])
        options.optimized_model_filepath = str(out)
        options.log_severity_level = 3
        runtime.InferenceSession(artifact.path, options, providers=["CPUExecutionProvider"])
        return derive(artifact, out, context, f"onnxruntime.{self.name}", config)


QuantOp = Literal["MatMul", "Gemm", "Conv", "Attention", "LSTM", "Gather", "EmbedLayerNormalization", "Add", "Mul"]
# the embedding table: a plain Gather, or the Gather inside a fused EmbedLayerNormalization
EMBEDDING_OPS = ("Gather", "EmbedLayerNormalization")


class TransformerOptimizeConfig(PassConfig):
    model_type: str = Field(default="auto", description="the optimizer's fusion recipe (bert, gpt2, …); auto: from "
                            "the source's config.json")
    num_heads: int = Field(default=0, ge=0, description="0: num_attention_heads from the source's config.json")
    hidden_size: int = Field(default=0, ge=0, description="0: hidden_size from the source's config.json")


class TransformerOptimize(Pass):
    name = "transformer_optimize"
    Config = TransformerOptimizeConfig
    needs_source = True
    summary = ("ONNX Runtime's transformer optimizer: attention, embedding and layer-norm, GELU fusions into "
               "contrib operators every ONNX Runtime CPU build runs")

    def apply(self, config: TransformerOptimizeConfig, artifact: ModelArtifact, context: PassContext) -> ModelArtifact:
        ort()
        import logging

        from onnxruntime.transformers import optimizer

        model_type, heads, hidden = _fusion_shape(config, context.source_path)
        logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)
        # opt_level 1: ONNX Runtime's basic (portable) optimizations first, which the attention fusion needs
        optimized = optimizer.optimize_model(artifact.path, model_type=model_type, num_heads=heads,
                                             hidden_size=hidden, opt_level=1, use_gpu=False)
        fused = {op: n for op, n in optimized.get_fused_operator_statistics().items() if n and op not in (
            "LayerNormalization",)}  # plain LayerNormalization is there already after export, not a fusion
        if not fused:
            raise NothingToDo(f"the {model_type} fusions matched nothing in this graph (an export the optimizer "
                              "does not recognise)")
        out = fresh_dir(context.output_dir) / MODEL_FILE
        optimized.save_model_to_file(str(out))
        return derive(artifact, out, context, f"onnxruntime.{self.name}", config,
                      notes={"model_type": model_type, "num_heads": heads, "hidden_size": hidden, "fused": fused})


def _fusion_shape(config: TransformerOptimizeConfig, source: Path | None) -> tuple[str, int, int]:
    """The fusion recipe, heads and hidden size: from the pass config, else from the source's config.json."""
    import json

    hf_config = {}
    if source is not None and (Path(source) / "config.json").is_file():
        hf_config = json.loads((Path(source) / "config.json").read_text())
    model_type = config.model_type
    if model_type == "auto":
        found = hf_config.get("model_type")
        if found not in FUSION_MODEL_TYPES:
            raise NothingToDo(f"no transformer fusion recipe for model_type {found!r} "
                              f"(known: {', '.join(sorted(FUSION_MODEL_TYPES))})")
        model_type = FUSION_MODEL_TYPES[found]
    heads = config.num_heads or int(hf_config.get("num_attention_heads", hf_config.get("n_head", 0)))
    hidden = config.hidden_size or int(hf_config.get("hidden_size", hf_config.get("n_embd", 0)))
    return model_type, heads, hidden


class DequantizeConfig(PassConfig):
    """No settings: a QDQ graph is read back as the float graph its DequantizeLinear nodes compute."""


class Dequantize(Pass):
    name = "dequantize"
    Config = DequantizeConfig
    restores_float = True
    summary = ("a QDQ int8 source read back as float: weights dequantized exactly, each Q/DQ pair on an activation "
               "the Clip to the range it lets through; edgeopt's own quantizers then requantize it")

    def apply(self, config: DequantizeConfig, artifact: ModelArtifact, context: PassContext) -> ModelArtifact:
        import onnx

        from edgeopt.quantized import dequantize_qdq, quantized_form

        model = onnx.load(artifact.path)
        form = quantized_form(model)
        if form is None or not form.startswith("QDQ"):
            raise NothingToDo(f"the model is not a QDQ graph ({form or 'a float graph'}): nothing to dequantize")
        notes = dequantize_qdq(model)
        out = fresh_dir(context.output_dir) / MODEL_FILE
        onnx.save(model, str(out))
        return derive(artifact, out, context, f"onnxruntime.{self.name}", config, precision="fp32-dequantized",
                      notes={"source_form": form, **notes})


class FixShapesConfig(PassConfig):
    """No settings: every dynamic dimension takes its size in the batch the build times."""


class FixShapes(Pass):
    name = "fix_shapes"
    Config = FixShapesConfig
    needs_timing_data = True
    summary = "every dynamic input dimension fixed to the timed batch's (ONNX Runtime's make_input_shape_fixed)"

    def apply(self, config: FixShapesConfig, artifact: ModelArtifact, context: PassContext) -> ModelArtifact:
        import onnx
        from onnxruntime.tools.onnx_model_utils import fix_output_shapes, make_input_shape_fixed

        from edgeopt.inputs import declared_io

        model = onnx.load(artifact.path)
        dynamic = [i.name for i in declared_io(model)[0] if not all(isinstance(d, int) for d in i.dims)]
        fixed = timed_shapes(context.timing_data, dynamic, self.name)
        _name_anonymous_dims(model.graph, fixed)
        for name, shape in fixed.items():
            make_input_shape_fixed(model.graph, name, shape)
        fix_output_shapes(model)
        out = fresh_dir(context.output_dir) / MODEL_FILE
        onnx.save(model, str(out))
        return derive(artifact, out, context, f"onnxruntime.{self.name}", config, precision=artifact.precision,
                      notes={"fixed_shapes": fixed})


def _name_anonymous_dims(graph, inputs) -> None:
    """ONNX Runtime's tool fixes a dimension by its name across the graph; paddle2onnx names every dynamic
    dimension "?" (and writes -1 for others), so height and width share one name and cannot take two sizes.
    Such dimensions get a name of their own first."""
    for value in graph.input:
        if value.name not in inputs:
            continue
        dims = value.type.tensor_type.shape.dim
        names = [d.dim_param for d in dims if d.HasField("dim_param")]
        for axis, dim in enumerate(dims):
            shared = dim.HasField("dim_param") and (dim.dim_param == "?" or names.count(dim.dim_param) > 1)
            unknown = dim.HasField("dim_value") and dim.dim_value < 0
            if shared or unknown:
                dim.dim_param = f"{value.name}_dim{axis}"


class QuantizeDynamicConfig(PassConfig):
    op_types: list[QuantOp] = Field(default=["MatMul", "Gemm"], description="ops to quantize")
    per_channel: bool = False
    weight_type: Literal["int8", "uint8"] = "int8"
    exclude_nodes: list[str] = []
    embeddings: bool = Field(default=False, description="also the embedding tables (Gather): a vocabulary-sized "
                             "table is most of a small transformer's file and memory")
    keep_float: int = Field(default=0, ge=0, description=(
        "mixed precision: this many of the MatMul/Gemm/Conv nodes that int8 hurts most stay in float, ranked by the "
        "outlier ratios of their activations (on calibration samples) and weights"))


class QuantizeDynamic(Pass):
    name = "quantize_dynamic"
    lowers_precision = True
    Config = QuantizeDynamicConfig
    summary = "int8 weights, activations quantized at run time"

    @classmethod
    def calibrates(cls, config: QuantizeDynamicConfig) -> bool:
        return config.keep_float > 0  # the nodes to leave in float are found on calibration samples

    def apply(self, config: QuantizeDynamicConfig, artifact: ModelArtifact, context: PassContext) -> ModelArtifact:
        ort()
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic

        out = fresh_dir(context.output_dir) / MODEL_FILE
        op_types = list(dict.fromkeys([*config.op_types, *(EMBEDDING_OPS if config.embeddings else ())]))
        with _own_view(artifact) as model_path:
            kept = (_most_harmful(model_path, context.calibration_data, op_types, config.keep_float, config.per_channel)
                    if config.keep_float else [])
            quantize_dynamic(
                model_path, str(out),
                op_types_to_quantize=op_types,
                per_channel=config.per_channel,
                weight_type=QuantType.QInt8 if config.weight_type == "int8" else QuantType.QUInt8,
                nodes_to_exclude=[*config.exclude_nodes, *kept],
                # activation x activation MatMuls (attention scores) lose too much when quantized on the fly
                # DefaultTensorType: fused contrib ops (Attention, EmbedLayerNormalization) carry no type
                # information for the quantizer to read; every weight it meets is float32 here
                extra_options={"MatMulConstBOnly": True, "DefaultTensorType": onnx.TensorProto.FLOAT},
            )
        counts = require_quantized(out, artifact.path, op_types)
        if kept:
            counts["kept_float"] = kept
        if config.embeddings:
            counts["embedding_tables_int8"] = _quantized_tables(out)
            if not counts["embedding_tables_int8"]:
                raise NothingToDo("the model has no embedding table (a Gather on a weight) to quantize")
        return derive(artifact, out, context, f"onnxruntime.{self.name}", config, precision="int8-dynamic",
                      notes=counts)


class QuantizeStaticConfig(PassConfig):
    calibration: Literal["minmax", "entropy", "percentile"] = "minmax"
    per_channel: bool = True
    op_types: list[QuantOp] | None = Field(default=None, description="default: every op ORT can quantize")
    activation_type: Literal["uint8", "int8"] = "uint8"  # u8 activations with s8 weights: the fast x86 path
    exclude_nodes: list[str] = []
    samples: int | None = Field(default=None, ge=1, description="calibration samples; default: all given")
    keep_float: int = Field(default=0, ge=0, description=(
        "mixed precision: this many of the MatMul/Gemm/Conv nodes that int8 hurts most stay in float, ranked as "
        "quantize_dynamic's keep_float ranks them"))


class QuantizeStatic(Pass):
    name = "quantize_static"
    lowers_precision = True
    Config = QuantizeStaticConfig
    needs_calibration = True
    cost = 3
    summary = "int8 QDQ with activation ranges calibrated on data"

    def apply(self, config: QuantizeStaticConfig, artifact: ModelArtifact, context: PassContext) -> ModelArtifact:
        ort()
        if context.calibration_data is None:
            raise ValueError("quantize_static needs calibration data")
        out_dir = fresh_dir(context.output_dir)
        out = out_dir / MODEL_FILE
        with _own_view(artifact) as own_path:
            model_path = _with_min_opset(own_path, 13, out_dir / "opset13.onnx")
            samples = _samples(context.calibration_data, model_path, config.samples)
            kept = (_most_harmful(model_path, context.calibration_data, list(config.op_types or WEIGHTED_OPS),
                                  config.keep_float, config.per_channel) if config.keep_float else [])
            self._quantize(config, model_path, out, samples, kept)
        # the calibrator writes an augmented copy of the model; keep it out of the artifact folder
        for stray in [*out_dir.glob("*augmented*"), out_dir / "opset13.onnx"]:
            stray.unlink(missing_ok=True)
        counts = require_quantized(out, artifact.path, config.op_types or ["every quantizable op"])
        if kept:
            counts["kept_float"] = kept
        return derive(artifact, out, context, f"onnxruntime.{self.name}", config, precision="int8-static",
                      notes={"calibration_samples": len(samples), **counts})

    @staticmethod
    def _quantize(config: QuantizeStaticConfig, model_path: str, out: Path, samples: list, kept: list[str]) -> None:
        from onnxruntime.quantization import (
            CalibrationDataReader,
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_static,
        )

        class Reader(CalibrationDataReader):
            def __init__(self):
                self._items = iter(samples)

            def get_next(self):
                return next(self._items, None)

        method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                  "percentile": CalibrationMethod.Percentile}[config.calibration]
        quantize_static(
            model_path, str(out), Reader(),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(config.op_types) if config.op_types else None,
            per_channel=config.per_channel,
            activation_type=QuantType.QUInt8 if config.activation_type == "uint8" else QuantType.QInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=[*config.exclude_nodes, *kept],
            calibrate_method=method,
            calibration_providers=["CPUExecutionProvider"],
        )


class QuantizeWeightsConfig(PassConfig):
    bits: Literal[4, 8] = 4
    block_size: Literal[16, 32, 64, 128, 256] = Field(
        default=32, description="weights share a scale per block of this many along the reduced axis")
    symmetric: bool = True
    accuracy_level: Literal[0, 1, 2, 3, 4] = Field(
        default=4, description="what the kernel computes in: 4 quantizes activations to int8 on the fly (the fast "
        "x86/ARM path), 1 keeps fp32 activations; 0 lets the runtime choose")
    exclude_nodes: list[str] = []


class QuantizeWeights(Pass):
    name = "quantize_weights"
    lowers_precision = True
    Config = QuantizeWeightsConfig
    summary = "weight-only int4/int8 MatMul (MatMulNBits): block-quantized weights, float tensors between MatMuls"

    def apply(self, config: QuantizeWeightsConfig, artifact: ModelArtifact, context: PassContext) -> ModelArtifact:
        ort()
        import onnx
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

        out = fresh_dir(context.output_dir) / MODEL_FILE
        with _own_view(artifact) as model_path:
            quantizer = MatMulNBitsQuantizer(
                onnx.load(model_path), bits=config.bits, block_size=config.block_size,
                is_symmetric=config.symmetric, accuracy_level=config.accuracy_level or None,
                nodes_to_exclude=list(config.exclude_nodes))
            quantizer.process()
            onnx.save(quantizer.model.model, str(out))
        counts = require_quantized(out, artifact.path, ["MatMul"])
        return derive(artifact, out, context, f"onnxruntime.{self.name}", config,
                      precision=f"int{config.bits}-weights", notes=counts)


class Fp16Config(PassConfig):
    keep_io_types: bool = Field(default=True, description="inputs and outputs stay float32 for the caller")
    op_block_list: list[str] = []


class Fp16(Pass):
    name = "fp16"
    lowers_precision = True
    Config = Fp16Config
    summary = "float16 weights and compute"

    def apply(self, config: Fp16Config, artifact: ModelArtifact, context: PassContext) -> ModelArtifact:
        ort()
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16

        out = fresh_dir(context.output_dir) / MODEL_FILE
        model = convert_float_to_float16(
            onnx.load(artifact.path), keep_io_types=config.keep_io_types,
            op_block_list=list(config.op_block_list) or None,
        )
        onnx.save(model, str(out))
        return derive(artifact, out, context, f"onnxruntime.{self.name}", config, precision="fp16")


class SessionConfig(PassConfig):
    intra_op_threads: int | None = Field(default=None, ge=1)
    inter_op_threads: int | None = Field(default=None, ge=1)
    graph_optimization_level: Literal["disable", "basic", "extended", "all"] = "all"
    enable_mem_arena: bool = True
    enable_mem_pattern: bool = True
    execution_mode: Literal["sequential", "parallel"] = "sequential"


Session = runtime_settings_pass(
    "onnxruntime", SessionConfig, name="session",
    summary="runtime configuration (threads, memory arena, optimization level); the model file is unchanged")


class ExternalWeightsConfig(PassConfig):
    min_bytes: int = Field(default=1024, ge=0, description="initializers at least this large move to the data file")
    session: SessionConfig | None = Field(
        default=None, description="runtime settings given with it (as onnxruntime.session gives them), so that the "
        "step can read the candidate those settings apply to and be timed in the same rounds as its sibling that "
        "only sets them (else the input's settings travel on)")


class ExternalWeights(Pass):
    name = "external_weights"
    Config = ExternalWeightsConfig
    summary = ("the weights in a data file beside the model, which ONNX Runtime maps into memory rather than "
               "parsing them out of the model and copying them: less peak memory while a session loads")

    def apply(self, config: ExternalWeightsConfig, artifact: ModelArtifact, context: PassContext) -> ModelArtifact:
        import onnx

        if artifact.files:
            raise NothingToDo(f"the weights already lie beside the model ({', '.join(artifact.files)})")
        out = fresh_dir(context.output_dir) / MODEL_FILE
        data = f"{MODEL_FILE}.data"
        onnx.save(onnx.load(artifact.path), str(out), save_as_external_data=True, all_tensors_to_one_file=True,
                  location=data, size_threshold=config.min_bytes)
        if not (out.parent / data).exists():
            raise NothingToDo(f"no initializer of {config.min_bytes} bytes or more to move out of the model")
        made = derive(artifact, out, context, f"onnxruntime.{self.name}", config,
                      notes={"data_file_bytes": (out.parent / data).stat().st_size})
        settings = runtime_values(config.session) if config.session is not None else made.runtime_config
        return made.model_copy(update={"files": (data,), "runtime_config": settings})


@contextmanager
def _own_view(artifact: ModelArtifact) -> Iterator[str]:
    """The model seen through links in a folder of this pass's own. ONNX Runtime's quantizers write a
    shape-inferred copy beside their input (`model-inferred.onnx`) and delete it after: two quantizers of
    one model run at once (`--jobs`, Ray) deleted each other's copy mid-read (FileNotFoundError)."""
    main = Path(artifact.path)
    with tempfile.TemporaryDirectory(prefix="edgeopt-quantize-") as folder:
        for path in artifact.all_paths():
            link = Path(folder) / Path(path).relative_to(main.parent)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(Path(path).resolve())
        yield str(Path(folder) / main.name)


def _most_harmful(float_path: str, calibration_data, op_types: list[str], count: int, per_channel: bool) -> list[str]:
    """The `count` nodes int8 hurts most, by the outlier ratios of their activation input (the float model's, on
    calibration samples) and their weights (edgeopt.measure.diagnosis.quantization_sensitivity)."""
    import onnx
    from onnx import numpy_helper

    from edgeopt.artifact import ModelArtifact
    from edgeopt.datafiles import load_samples
    from edgeopt.frameworks.onnxruntime.runtime import OnnxRuntime
    from edgeopt.measure.diagnosis import quantization_sensitivity

    graph = onnx.load(float_path).graph
    weights = {t.name: t for t in graph.initializer}
    weighted = [n for n in graph.node if n.name and n.op_type in WEIGHTED_OPS and len(n.input) > 1
                and n.input[1] in weights and n.op_type in op_types]
    if not weighted:
        return []
    if count >= len(weighted):
        raise NothingToDo(f"quantized no node: keeping {count} in float leaves none of the model's {len(weighted)} "
                          f"{'/'.join(op_types)} nodes in int8")
    activations = OnnxRuntime().layer_outputs(ModelArtifact(path=float_path, framework="onnxruntime"),
                                              load_samples(calibration_data, SENSITIVITY_SAMPLES))
    # per-channel scales run along the output channels: a MatMul's last axis, a Conv's or Gemm's first
    axis = {n.name: (-1 if n.op_type == "MatMul" else 0) if per_channel else None for n in weighted}
    nodes = [(n.name, n.input[0], numpy_helper.to_array(weights[n.input[1]])) for n in weighted]
    return [name for name, _ in quantization_sensitivity(nodes, activations, axis)[:count]]


def _with_min_opset(path: str, opset: int, scratch: Path) -> str:
    """Per-channel QDQ needs DequantizeLinear's `axis`, which arrived in opset 13."""
    import onnx
    from onnx import version_converter

    model = onnx.load(path)
    current = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), opset)
    if current >= opset:
        return path
    onnx.save(version_converter.convert_version(model, opset), str(scratch))
    return str(scratch)


def _samples(npz_path: Path, model_path: str, limit: int | None) -> list[dict[str, np.ndarray]]:
    """One feed dict per sample, cast to what the model declares."""
    from edgeopt.datafiles import load_samples

    session = ort().InferenceSession(model_path, providers=["CPUExecutionProvider"])
    data = load_samples(npz_path, limit)
    inputs = [(i.name, i.type) for i in session.get_inputs()]
    names = [o.name for o in session.get_outputs()]

    def typed(feed: dict) -> dict:
        return {name: cast(feed[name], kind) for name, kind in inputs}

    if not data.recurrent:
        return [typed(data.feed(i, i + 1)) for i in range(data.count)]
    # a streaming model is calibrated on the states the float model carries, not only on the initial one
    return [typed(feed) for feed, _ in data.in_order(lambda feed: dict(zip(names, session.run(None, typed(feed)))))]


def _quantized_tables(path: Path) -> int:
    """Embedding tables stored in 8 bits: integer initializers that a Gather or QEmbedLayerNormalization reads."""
    import onnx

    graph = onnx.load(str(path)).graph
    eight_bit = {i.name for i in graph.initializer if i.data_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)}
    readers = [n for n in graph.node if n.op_type in ("Gather", "QEmbedLayerNormalization")]
    return len({name for n in readers for name in n.input if name in eight_bit and "scale" not in name
                and "zero_point" not in name})


def op_counts(path: Path | str) -> Counter:
    import onnx

    return Counter(n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node)


def require_quantized(out: Path, source: str, op_types) -> dict:
    """How many nodes the quantizer turned into quantized ones; none at all means no int8 candidate."""
    counts = op_counts(out)
    quantized = sum(counts[op] for op in QUANTIZED_OPS)
    if quantized == 0:
        present = ", ".join(f"{op} ×{n}" for op, n in op_counts(source).most_common(6))
        raise NothingToDo(f"quantized no node: the model has no {'/'.join(op_types)} to quantize "
                          f"(its most common ops: {present})")
    return {"quantized_nodes": quantized, "nodes": sum(counts.values())}


PASSES = {p.name: p for p in (Optimize, TransformerOptimize, FixShapes, Dequantize, QuantizeDynamic, QuantizeStatic,
                                   QuantizeWeights, ExternalWeights, Fp16, Session)}
