"""ONNX Runtime's side of measurement and packaging: sessions, I/O descriptions, intermediate outputs."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from edgeopt.artifact import ModelArtifact
from edgeopt.datafiles import Samples
from edgeopt.frameworks.base import GraphRuntime, GraphSession, InputInfo, by_layer, require

INSTALL = "pip install 'edgeopt[onnx]'"
ORT_MODEL, ORT_OPERATORS = "model.ort", "required_operators.config"  # the mobile form's names in a package
LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
          "all": "ORT_ENABLE_ALL"}
ORT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64,
             "tensor(int32)": np.int32, "tensor(uint8)": np.uint8, "tensor(int8)": np.int8,
             "tensor(bool)": np.bool_, "tensor(double)": np.float64}


def ort():
    return require("onnxruntime", "onnxruntime", INSTALL)


def cast(array: np.ndarray, ort_type: str) -> np.ndarray:
    dtype = ORT_TYPES.get(ort_type)
    return array.astype(dtype, copy=False) if dtype is not None else array


class OnnxRuntimeSession(GraphSession):
    def __init__(self, artifact: ModelArtifact, threads: int | None):
        runtime = ort()
        config = artifact.runtime_config
        options = runtime.SessionOptions()
        options.log_severity_level = 3
        options.graph_optimization_level = getattr(
            runtime.GraphOptimizationLevel, LEVELS[config.get("graph_optimization_level", "all")])
        intra = config.get("intra_op_threads", threads)
        if intra:
            options.intra_op_num_threads = int(intra)
        if config.get("inter_op_threads"):
            options.inter_op_num_threads = int(config["inter_op_threads"])
        options.enable_cpu_mem_arena = bool(config.get("enable_mem_arena", True))
        options.enable_mem_pattern = bool(config.get("enable_mem_pattern", True))
        if config.get("execution_mode") == "parallel":
            options.execution_mode = runtime.ExecutionMode.ORT_PARALLEL
        self._session = runtime.InferenceSession(artifact.path, options, providers=["CPUExecutionProvider"])
        self.inputs = [InputInfo(i.name, tuple(i.shape), np.dtype(ORT_TYPES[i.type]) if i.type in ORT_TYPES else None)
                       for i in self._session.get_inputs()]
        self.output_names = [o.name for o in self._session.get_outputs()]
        self.threads = intra

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self._session.run(None, feeds)


class OnnxRuntime(GraphRuntime):
    framework = "onnxruntime"
    package_format = "onnx"
    supports_layer_outputs = True

    def versions(self) -> dict[str, str]:
        return {"onnxruntime": ort().__version__}

    def load(self, artifact: ModelArtifact, threads: int | None) -> OnnxRuntimeSession:
        return OnnxRuntimeSession(artifact, threads)

    def threads_on(self, artifact: ModelArtifact, cores: int) -> int:
        # ONNX Runtime's default intra-op pool has one thread per physical core
        return int(artifact.runtime_config.get("intra_op_threads") or cores)

    def with_threads(self, artifact: ModelArtifact, threads: int) -> ModelArtifact:
        settings = {**artifact.runtime_config, "intra_op_threads": threads, "inter_op_threads": 1,
                    "execution_mode": "sequential"}
        return artifact.model_copy(update={"runtime_config": settings})

    def layer_outputs(self, artifact: ModelArtifact, samples: Samples) -> dict[str, np.ndarray]:
        """Every float tensor the graph computes, by name, sample by sample (graph optimizations off,
        so tensors keep the names they have in the file)."""
        import onnx

        runtime = ort()
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
        options = runtime.SessionOptions()
        options.graph_optimization_level = runtime.GraphOptimizationLevel.ORT_DISABLE_ALL
        options.log_severity_level = 3
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "all-outputs.onnx"
            onnx.save(model, str(path))
            session = runtime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        inputs = [(i.name, i.type) for i in session.get_inputs()]
        collected: dict[str, list] = {name: [] for name in names}
        for i in range(samples.count):
            given = samples.feed(i, i + 1)
            values = session.run(None, {name: cast(given[name], kind) for name, kind in inputs})
            for name, value in zip(names, values):
                collected[name].append(np.asarray(value, dtype=np.float32))
        return by_layer(collected)

    def runtime_requirement(self, built_with: Mapping[str, str]) -> dict:
        version = built_with.get("onnxruntime") or ort().__version__
        major, minor = (int(x) for x in version.split(".")[:2])
        return {"package": "onnxruntime", "version_range": f">={major}.{minor},<{major + 1}",
                "measured_with": version, "install": f"pip install 'onnxruntime>={major}.{minor},<{major + 1}' numpy"}

    def mobile_files(self, artifact: ModelArtifact, scratch: Path) -> dict[str, Path]:
        """ONNX Runtime's mobile form, by its own tool: the .ort flatbuffer (optimizations applied now, "Fixed"
        style, for the CPU provider) and the operator list a reduced runtime build for the app is made from."""
        import subprocess
        import sys

        source = scratch / "source"
        source.mkdir(parents=True, exist_ok=True)
        for path in artifact.all_paths():
            shutil.copy2(path, source / path.name)
        completed = subprocess.run(
            [sys.executable, "-m", "onnxruntime.tools.convert_onnx_models_to_ort", str(source / Path(artifact.path).name),
             "--output_dir", str(scratch / "ort"), "--optimization_style", "Fixed"],
            capture_output=True, text=True, env={**os.environ, "ORT_DISABLE_TELEMETRY": "1"})
        stem = Path(artifact.path).stem
        made = {ORT_MODEL: scratch / "ort" / f"{stem}.ort",
                ORT_OPERATORS: scratch / "ort" / f"{stem}.required_operators.config"}
        if completed.returncode != 0 or not all(p.is_file() for p in made.values()):
            tail = (completed.stderr.strip() or completed.stdout.strip() or "no output").splitlines()[-1]
            raise RuntimeError(f"onnxruntime's convert_onnx_models_to_ort failed: {tail}")
        return made

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
