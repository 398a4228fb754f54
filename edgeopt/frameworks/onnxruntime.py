"""ONNX Runtime: graph optimization, int8 (dynamic, static QDQ), fp16, session tuning; and its runner."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from edgeopt.artifact import ModelArtifact
from edgeopt.frameworks.common import files_beside, fresh_dir, lineage_entry, probe_distribution, with_runtime_settings
from edgeopt.passes import Pass, PassConfig, PassContext

MODEL_FILE = "model.onnx"
INSTALL = "pip install 'edgeopt[onnx]'"

_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
           "all": "ORT_ENABLE_ALL"}


def _ort():
    from edgeopt.errors import MissingDependency

    try:
        import onnxruntime
    except ImportError:
        raise MissingDependency("onnxruntime", INSTALL) from None
    return onnxruntime


def _derive(artifact: ModelArtifact, path: Path, context: PassContext, pass_name: str, config: PassConfig,
            precision: str | None = None, notes: dict | None = None) -> ModelArtifact:
    return artifact.model_copy(update={
        "path": str(path), "files": (), "precision": precision or artifact.precision,
        "lineage": (*artifact.lineage, lineage_entry(context, pass_name, config, notes)),
    })


class OptimizeConfig(PassConfig):
    level: Literal["basic", "extended"] = Field(
        default="basic", description="ORT_ENABLE_ALL is refused: its layouts are specific to the build CPU")


class Optimize(Pass):
    name = "optimize"
    Config = OptimizeConfig
    summary = "offline graph optimization, saved as a portable ONNX model"

    def apply(self, config: OptimizeConfig, artifact: ModelArtifact, context: PassContext) -> ModelArtifact:
        ort = _ort()
        out = fresh_dir(context.output_dir) / MODEL_FILE
        options = ort.SessionOptions()
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _LEVELS[config.level])
        options.optimized_model_filepath = str(out)
        options.log_severity_level = 3
        ort.InferenceSession(artifact.path, options, providers=["CPUExecutionProvider"])
        return _derive(artifact, out, context, f"onnxruntime.{self.name}", config)


QuantOp = Literal["MatMul", "Gemm", "Conv", "Attention", "LSTM", "Gather", "Add", "Mul"]


class QuantizeDynamicConfig(PassConfig):
    op_types: list[QuantOp] = Field(default=["MatMul", "Gemm"], description="ops to quantize")
    per_channel: bool = False
    weight_type: Literal["int8", "uint8"] = "int8"
    exclude_nodes: list[str] = []


class QuantizeDynamic(Pass):
    name = "quantize_dynamic"
    Config = QuantizeDynamicConfig
    summary = "int8 weights, activations quantized at run time"

    def precision(self, config, input_precision):
        return "int8-dynamic"

    def apply(self, config: QuantizeDynamicConfig, artifact: ModelArtifact, context: PassContext) -> ModelArtifact:
        _ort()
        from onnxruntime.quantization import QuantType, quantize_dynamic

        out = fresh_dir(context.output_dir) / MODEL_FILE
        quantize_dynamic(
            artifact.path, str(out),
            op_types_to_quantize=list(config.op_types),
            per_channel=config.per_channel,
            weight_type=QuantType.QInt8 if config.weight_type == "int8" else QuantType.QUInt8,
            nodes_to_exclude=list(config.exclude_nodes),
            # activation x activation MatMuls (attention scores) lose too much when quantized on the fly
            extra_options={"MatMulConstBOnly": True},
        )
        return _derive(artifact, out, context, f"onnxruntime.{self.name}", config,
                       precision=self.precision(config, artifact.precision),
                       notes=_count_quantized(out))


class QuantizeStaticConfig(PassConfig):
    calibration: Literal["minmax", "entropy", "percentile"] = "minmax"
    per_channel: bool = True
    op_types: list[QuantOp] | None = Field(default=None, description="default: every op ORT can quantize")
    activation_type: Literal["uint8", "int8"] = "uint8"  # u8 activations with s8 weights: the fast x86 path
    exclude_nodes: list[str] = []
    samples: int | None = Field(default=None, ge=1, description="calibration samples; default: all given")


class QuantizeStatic(Pass):
    name = "quantize_static"
    Config = QuantizeStaticConfig
    needs_calibration = True
    cost = 3
    summary = "int8 QDQ with activation ranges calibrated on data"

    def precision(self, config, input_precision):
        return "int8-static"

    def apply(self, config: QuantizeStaticConfig, artifact: ModelArtifact, context: PassContext) -> ModelArtifact:
        _ort()
        from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                              quantize_static)

        if context.calibration_data is None:
            raise ValueError("quantize_static needs calibration data")
        out_dir = fresh_dir(context.output_dir)
        out = out_dir / MODEL_FILE
        model_path = _with_min_opset(artifact.path, 13, out_dir / "opset13.onnx")
        samples = _samples(context.calibration_data, model_path, config.samples)

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
            nodes_to_exclude=list(config.exclude_nodes),
            calibrate_method=method,
            # the calibrator writes an augmented copy of the model; keep it out of the artifact folder
            calibration_providers=["CPUExecutionProvider"],
        )
        for stray in [*out_dir.glob("*augmented*"), out_dir / "opset13.onnx"]:
            stray.unlink(missing_ok=True)
        return _derive(artifact, out, context, f"onnxruntime.{self.name}", config,
                       precision=self.precision(config, artifact.precision),
                       notes={"calibration_samples": len(samples), **_count_quantized(out)})


class Fp16Config(PassConfig):
    keep_io_types: bool = Field(default=True, description="inputs and outputs stay float32 for the caller")
    op_block_list: list[str] = []


class Fp16(Pass):
    name = "fp16"
    Config = Fp16Config
    summary = "float16 weights and compute"

    def precision(self, config, input_precision):
        return "fp16"

    def apply(self, config: Fp16Config, artifact: ModelArtifact, context: PassContext) -> ModelArtifact:
        _ort()
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16

        out = fresh_dir(context.output_dir) / MODEL_FILE
        model = convert_float_to_float16(
            onnx.load(artifact.path), keep_io_types=config.keep_io_types,
            op_block_list=list(config.op_block_list) or None,
        )
        onnx.save(model, str(out))
        return _derive(artifact, out, context, f"onnxruntime.{self.name}", config,
                       precision=self.precision(config, artifact.precision))


class SessionConfig(PassConfig):
    intra_op_threads: int | None = Field(default=None, ge=1)
    inter_op_threads: int | None = Field(default=None, ge=1)
    graph_optimization_level: Literal["disable", "basic", "extended", "all"] = "all"
    enable_mem_arena: bool = True
    enable_mem_pattern: bool = True
    execution_mode: Literal["sequential", "parallel"] = "sequential"


class Session(Pass):
    name = "session"
    Config = SessionConfig
    cost = 0
    summary = "runtime configuration (threads, memory arena, optimization level); the model file is unchanged"

    def apply(self, config: SessionConfig, artifact: ModelArtifact, context: PassContext) -> ModelArtifact:
        return with_runtime_settings(artifact, config, context, f"onnxruntime.{self.name}")


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
    ort = _ort()
    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    with np.load(npz_path) as data:
        arrays = {i.name: _cast(data[i.name], i.type) for i in session.get_inputs()}
    count = len(next(iter(arrays.values())))
    count = min(count, limit) if limit else count
    return [{name: array[i:i + 1] for name, array in arrays.items()} for i in range(count)]


_ORT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64,
              "tensor(int32)": np.int32, "tensor(uint8)": np.uint8, "tensor(int8)": np.int8,
              "tensor(bool)": np.bool_, "tensor(double)": np.float64}


def _cast(array: np.ndarray, ort_type: str) -> np.ndarray:
    dtype = _ORT_TYPES.get(ort_type)
    return array.astype(dtype, copy=False) if dtype is not None else array


def _count_quantized(path: Path) -> dict:
    import onnx

    ops = [n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node]
    quantized = sum(op in ("MatMulInteger", "ConvInteger", "QLinearMatMul", "QLinearConv", "DynamicQuantizeMatMul",
                           "QuantizeLinear") for op in ops)
    return {"quantized_nodes": quantized, "nodes": len(ops)}


class OnnxRuntimeSession:
    """What the measurement worker drives: load once, then run feeds."""

    def __init__(self, artifact: ModelArtifact, threads: int | None):
        ort = _ort()
        config = artifact.runtime_config
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.graph_optimization_level = getattr(
            ort.GraphOptimizationLevel, _LEVELS[config.get("graph_optimization_level", "all")])
        intra = config.get("intra_op_threads", threads)
        if intra:
            options.intra_op_num_threads = int(intra)
        if config.get("inter_op_threads"):
            options.inter_op_num_threads = int(config["inter_op_threads"])
        options.enable_cpu_mem_arena = bool(config.get("enable_mem_arena", True))
        options.enable_mem_pattern = bool(config.get("enable_mem_pattern", True))
        if config.get("execution_mode") == "parallel":
            options.execution_mode = ort.ExecutionMode.ORT_PARALLEL
        self._session = ort.InferenceSession(artifact.path, options, providers=["CPUExecutionProvider"])
        self.inputs = [(i.name, i.shape, i.type) for i in self._session.get_inputs()]
        self.output_names = [o.name for o in self._session.get_outputs()]
        self.threads = intra

    def fixed_batch(self) -> int | None:
        dims = [shape[0] for _, shape, _ in self.inputs if shape]
        return dims[0] if dims and isinstance(dims[0], int) else None

    def feeds(self, arrays: dict[str, np.ndarray], start: int, stop: int) -> dict[str, np.ndarray]:
        missing = [name for name, _, _ in self.inputs if name not in arrays]
        if missing:
            raise KeyError(f"the data has no array for model input(s) {missing}; it has {sorted(arrays)}")
        return {name: _cast(arrays[name][start:stop], kind) for name, _, kind in self.inputs}

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self._session.run(None, feeds)


class OnnxRuntimeAdapter:
    name = "onnxruntime"
    install = INSTALL
    passes = {p.name: p for p in (Optimize, QuantizeDynamic, QuantizeStatic, Fp16, Session)}

    def probe(self):
        return probe_distribution("onnxruntime", "onnx", import_name="onnxruntime")

    def runtime_versions(self) -> dict[str, str]:
        return {"onnxruntime": _ort().__version__}

    def load(self, artifact: ModelArtifact, threads: int | None) -> OnnxRuntimeSession:
        return OnnxRuntimeSession(artifact, threads)

    def size_bytes(self, artifact: ModelArtifact) -> int:
        return sum(os.path.getsize(p) for p in artifact.all_paths())

    def layer_outputs(self, artifact: ModelArtifact, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every float tensor the graph computes, by name, sample by sample (graph optimizations off,
        so tensors keep the names they have in the file)."""
        import tempfile

        import onnx

        ort = _ort()
        model = onnx.load(artifact.path)
        known = {v.name: v for v in onnx.shape_inference.infer_shapes(model).graph.value_info}
        existing = {o.name for o in model.graph.output}
        floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)
        for node in model.graph.node:
            for name in node.output:
                info = known.get(name)
                if info is not None and name not in existing and info.type.tensor_type.elem_type in floats:
                    model.graph.output.append(info)
                    existing.add(name)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        options.log_severity_level = 3
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "all-outputs.onnx"
            onnx.save(model, str(path))
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        inputs = [(i.name, i.type) for i in session.get_inputs()]
        count = len(next(iter(arrays.values())))
        collected: dict[str, list] = {name: [] for name in names}
        for i in range(count):
            values = session.run(None, {name: _cast(arrays[name][i:i + 1], kind) for name, kind in inputs})
            for name, value in zip(names, values):
                collected[name].append(np.asarray(value, dtype=np.float32))
        return {name: np.stack(parts) for name, parts in collected.items() if len({p.shape for p in parts}) == 1}

    # -- packaging --------------------------------------------------------------------------------
    package_format = "onnx"

    def package_files(self, artifact: ModelArtifact) -> dict[str, Path]:
        return files_beside(artifact)

    def package_entry(self, artifact: ModelArtifact) -> str:
        return Path(artifact.path).name

    def runtime_requirement(self, built_with: dict[str, str]) -> dict:
        version = built_with.get("onnxruntime", _ort().__version__)
        major, minor = (int(x) for x in version.split(".")[:2])
        return {"package": "onnxruntime", "version_range": f">={major}.{minor},<{major + 1}",
                "measured_with": version, "install": f"pip install 'onnxruntime>={major}.{minor},<{major + 1}' numpy"}

    def io_spec(self, artifact: ModelArtifact) -> dict:
        import onnx

        model = onnx.load(artifact.path, load_external_data=False)
        initializers = {i.name for i in model.graph.initializer}

        def describe(value) -> dict:
            tensor = value.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor.shape.dim]
            dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name
            return {"name": value.name, "dtype": dtype, "shape": dims}

        opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
        return {"inputs": [describe(v) for v in model.graph.input if v.name not in initializers],
                "outputs": [describe(v) for v in model.graph.output], "opset": opset}

    def example_script(self) -> str:
        from importlib.resources import files

        return (files("edgeopt.frameworks") / "examples" / "onnxruntime_example.py").read_text()


ADAPTER = OnnxRuntimeAdapter()
