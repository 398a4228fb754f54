"""OpenVINO's side of measurement and packaging: compiled models (with the execution precision read
back), intermediate outputs by operation name, IR I/O descriptions; and its telemetry kept off."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from edgeopt.artifact import ModelArtifact
from edgeopt.datafiles import Samples
from edgeopt.frameworks.base import GraphRuntime, GraphSession, InputInfo, by_layer, require

INSTALL = "pip install 'edgeopt[openvino]'"
MODEL_XML, MODEL_BIN = "model.xml", "model.bin"
_HINTS = {"latency": "LATENCY", "throughput": "THROUGHPUT"}


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


def ov():
    _silence_telemetry()
    return require("openvino", "openvino", INSTALL)


def nncf():
    ov()
    return require("nncf", "nncf", INSTALL)


def read_ir(artifact: ModelArtifact):
    if artifact.format != "openvino-ir":
        raise ValueError(f"expected an OpenVINO IR, got {artifact.format}: put openvino.convert first")
    return ov().Core().read_model(artifact.path)


def compile_options(runtime: Mapping, threads: int | None) -> dict:
    """The CPU plugin's settings for a candidate. The inference precision is always stated when the
    candidate names one: left alone, OpenVINO computes an "fp32" IR in bf16 on CPUs with AVX-512 BF16 or
    AMX and in f16 on ARM, and the label would not say what ran."""
    options = {"PERFORMANCE_HINT": _HINTS[runtime.get("performance_hint", "latency")]}
    threads = runtime.get("inference_num_threads", threads)
    if threads:
        options["INFERENCE_NUM_THREADS"] = int(threads)
    if runtime.get("num_streams"):
        options["NUM_STREAMS"] = int(runtime["num_streams"])
    if runtime.get("inference_precision"):
        options["INFERENCE_PRECISION_HINT"] = runtime["inference_precision"]
    return options


class OpenVinoSession(GraphSession):
    def __init__(self, artifact: ModelArtifact, threads: int | None):
        self._compiled = ov().Core().compile_model(artifact.path, "CPU", compile_options(artifact.runtime_config, threads))
        self._request = self._compiled.create_infer_request()
        self.inputs = [InputInfo(p.get_any_name(), _static_dims(p.get_partial_shape()), p.get_element_type().to_dtype())
                       for p in self._compiled.inputs]
        self.output_names = [o.get_any_name() for o in self._compiled.outputs]
        self.threads = self._compiled.get_property("INFERENCE_NUM_THREADS")
        hint = self._compiled.get_property("INFERENCE_PRECISION_HINT")  # an element type: f32, bf16, f16
        self.execution_precision = hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint).lower()

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        results = self._request.infer(feeds)
        return [results[output] for output in self._compiled.outputs]


def _static_dims(shape) -> tuple:
    if not shape.rank.is_static:
        return ()
    return tuple(d.get_length() if d.is_static else "?" for d in shape)


class OpenVinoRuntime(GraphRuntime):
    framework = "openvino"
    package_format = "openvino-ir"
    supports_layer_outputs = True

    def versions(self) -> dict[str, str]:
        return {"openvino": ov().__version__.split("-")[0]}

    def model_digest(self, artifact: ModelArtifact) -> str:
        """The weights and the graph, without what differs between two saves of the same model: the names
        OpenVINO generates for constants (Constant_5511 vs Constant_16481) and NNCF's record of the
        parameters it was called with (rt_info). Accuracy control that reverted nothing is then seen to
        be the plain int8 model it is."""
        import hashlib
        import re

        from edgeopt.hashing import file_digest

        xml = Path(artifact.path).read_text(errors="replace")
        xml = re.sub(r"<rt_info>.*?</rt_info>", "", xml, flags=re.DOTALL)
        xml = re.sub(r' name="[^"]*"', "", xml)
        weights = [file_digest(Path(artifact.path).parent / name) for name in artifact.files]
        return hashlib.sha256((xml + "".join(weights)).encode()).hexdigest()

    def load(self, artifact: ModelArtifact, threads: int | None) -> OpenVinoSession:
        return OpenVinoSession(artifact, threads)

    def threads_on(self, artifact: ModelArtifact, cores: int) -> int:
        return int(artifact.runtime_config.get("inference_num_threads") or cores)

    def with_threads(self, artifact: ModelArtifact, threads: int) -> ModelArtifact:
        settings = {**artifact.runtime_config, "inference_num_threads": threads, "num_streams": 1,
                    "performance_hint": "latency"}
        return artifact.model_copy(update={"runtime_config": settings})

    def layer_outputs(self, artifact: ModelArtifact, samples: Samples) -> dict[str, np.ndarray]:
        """The output of every computing operation, by its friendly name (NNCF keeps those names and
        inserts FakeQuantize beside them), in fp32 inference precision."""
        model = read_ir(artifact)
        skip = {"Parameter", "Constant", "Result", "FakeQuantize", "Convert", "ShapeOf", "Reshape", "Squeeze",
                "Unsqueeze", "Gather", "Concat", "Broadcast", "Transpose"}
        ops = [op for op in model.get_ordered_ops() if op.get_type_name() not in skip and op.get_output_size() == 1
               and op.get_output_element_type(0).is_real()]
        first_added = len(model.outputs)
        model.add_outputs([op.output(0) for op in ops])
        compiled = ov().Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        request = compiled.create_infer_request()
        inputs = [(p.get_any_name(), p.get_element_type().to_dtype()) for p in compiled.inputs]
        collected: dict[str, list] = {op.get_friendly_name(): [] for op in ops}
        for i in range(samples.count):
            given = samples.feed(i, i + 1)
            results = request.infer({name: given[name].astype(dtype) for name, dtype in inputs})
            for op, port in zip(ops, compiled.outputs[first_added:]):
                collected[op.get_friendly_name()].append(np.array(results[port], dtype=np.float32))
        return by_layer(collected)

    def runtime_requirement(self, built_with: Mapping[str, str]) -> dict:
        version = built_with.get("openvino") or ov().__version__.split("-")[0]
        year, release = (int(x) for x in version.split(".")[:2])
        # IR v11 written by this release loads in this and later releases
        return {"package": "openvino", "version_range": f">={year}.{release}", "measured_with": version,
                "install": f"pip install 'openvino>={year}.{release}' numpy"}

    def io_spec(self, artifact: ModelArtifact) -> dict:
        model = read_ir(artifact)

        def describe(port) -> dict:
            shape = port.get_partial_shape()
            dims = [d.get_length() if d.is_static else "?" for d in shape] if shape.rank.is_static else "?"
            return {"name": port.get_any_name(), "dtype": port.get_element_type().to_dtype().name, "shape": dims}

        return {"inputs": [describe(p) for p in model.inputs], "outputs": [describe(p) for p in model.outputs]}
