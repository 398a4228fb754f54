"""A toy framework for tests of the build's logic: a model is a weight matrix in a .npy file, a pass rounds
it to fewer bits, the runtime multiplies. It honours the real adapter contract (frameworks/base.py), so
the Builder, the worker operations and the in-process runner run it exactly as they run ONNX Runtime.

Speed is set, not measured: a model's `delay_ms` runtime setting makes every run sleep that long, so a
"faster" candidate is faster whatever the machine is doing.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from pydantic import Field

from edgeopt.artifact import ModelArtifact
from edgeopt.frameworks.base import FrameworkAdapter, GraphRuntime, GraphSession, InputInfo, runtime_settings_pass
from edgeopt.frameworks.common import fresh_dir
from edgeopt.passes import NothingToDo, Pass, PassConfig, PassContext
from edgeopt.registry import Availability, FrameworkEntry

MODEL = "model.npy"


def entry(module: str = "tests.unit.toy") -> FrameworkEntry:
    return FrameworkEntry("toy", "Toy (numpy)", ("classification", "generic"), module, "toy")


def _save(weights: np.ndarray, context: PassContext) -> Path:
    path = fresh_dir(context.output_dir) / MODEL
    np.save(path, weights.astype(np.float32))
    return path


class SpeedConfig(PassConfig):
    delay_ms: float = Field(default=0.0, ge=0, description="every run sleeps this long")


class Load(Pass):
    name = "load"
    Config = SpeedConfig
    cost = 3

    def apply(self, config: SpeedConfig, artifact, context: PassContext) -> ModelArtifact:
        path = _save(np.load(context.source_path), context)
        return ModelArtifact(path=str(path), format="toy-npy", framework="toy", precision="fp32",
                             runtime_config={"delay_ms": config.delay_ms},
                             lineage=(context.lineage("toy.load", config),))


class RoundConfig(SpeedConfig):
    bits: int = Field(default=8, ge=1, le=16)


class Round(Pass):
    name = "round"
    Config = RoundConfig

    def apply(self, config: RoundConfig, artifact: ModelArtifact, context: PassContext) -> ModelArtifact:
        weights = np.load(artifact.path)
        scale = np.abs(weights).max() / (2 ** (config.bits - 1) - 1)
        path = _save(np.round(weights / scale) * scale, context)
        return artifact.model_copy(update={
            "path": str(path), "precision": f"int{config.bits}", "runtime_config": {"delay_ms": config.delay_ms},
            "lineage": (*artifact.lineage, context.lineage("toy.round", config, {"scale": float(scale)}))})


class CopyConfig(SpeedConfig):
    environment: str | None = None  # an environment the copy claims to run code from (for its cache key)


class Copy(Pass):
    """The same bytes again: a second candidate that is the first one."""

    name = "copy"
    Config = CopyConfig

    @classmethod
    def environments(cls, config: CopyConfig) -> tuple[str, ...]:
        return (config.environment,) if config.environment else ()

    def apply(self, config: SpeedConfig, artifact: ModelArtifact, context: PassContext) -> ModelArtifact:
        path = _save(np.load(artifact.path), context)
        return artifact.model_copy(update={"path": str(path),
                                           "lineage": (*artifact.lineage, context.lineage("toy.copy", config))})


class Nothing(Pass):
    name = "nothing"
    Config = SpeedConfig

    def apply(self, config, artifact, context):
        raise NothingToDo("quantized no node: the toy has nothing for this pass")


class Broken(Pass):
    name = "broken"
    Config = SpeedConfig

    def apply(self, config, artifact, context):
        raise RuntimeError("the toy pass broke\nsecond line of the story")


Settings = runtime_settings_pass("toy", SpeedConfig, summary="how long each run sleeps", name="settings")


class ToySession(GraphSession):
    def __init__(self, artifact: ModelArtifact, threads: int | None):
        self.weights = np.load(artifact.path)
        self.delay = artifact.runtime_config.get("delay_ms", 0.0) / 1000.0
        self.inputs = [InputInfo("x", ("batch", self.weights.shape[0]), np.dtype(np.float32))]
        self.output_names = ["y"]
        self.threads = threads or 1

    def run(self, feeds):
        if self.delay:
            time.sleep(self.delay)
        return [feeds["x"] @ self.weights]


class ToyRuntime(GraphRuntime):
    framework = "toy"
    package_format = "toy-npy"
    supports_layer_outputs = True

    def versions(self):
        return {"toy": "1.0"}

    def load(self, artifact, threads):
        return ToySession(artifact, threads)

    def layer_outputs(self, artifact, samples):
        return {"matmul": samples.feed(0, samples.count)["x"] @ np.load(artifact.path)}

    def runtime_requirement(self, built_with):
        return {"package": "numpy", "version_range": ">=1.24", "install": "pip install numpy"}

    def io_spec(self, artifact):
        return {"inputs": [{"name": "x", "dtype": "float32", "shape": ["batch", int(np.load(artifact.path).shape[0])]}],
                "outputs": [{"name": "y", "dtype": "float32", "shape": ["batch", "?"]}]}


class ToyAdapter(FrameworkAdapter):
    name = "toy"
    install = "pip install numpy"
    passes = {p.name: p for p in (Load, Round, Copy, Nothing, Broken, Settings)}
    runtime = ToyRuntime()

    def probe(self):
        return Availability(True, "toy 1.0")


ADAPTER = ToyAdapter()
