"""The index of framework adapters: what exists, what it supports, how to install it; loaded lazily.

Like Olive's package config, the index is plain data, so listing and planning never import a
framework. The CLI builds one Registry and passes it down; nothing registers itself on import.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from edgeopt.errors import PlanError, closest
from edgeopt.frameworks.base import Availability, FrameworkAdapter


@dataclass(frozen=True)
class FrameworkEntry:
    name: str
    title: str
    tasks: tuple[str, ...]
    module: str | None = None  # None: no adapter yet
    extra: str | None = None
    planned_in: str | None = None  # where the missing adapter is tracked
    # the backend environment (`edgeopt env create NAME`) its passes and measurements run in, when its toolchain
    # cannot share edgeopt's own (the worker runs there, JSON in and out); None: edgeopt's own interpreter
    runs_in: str | None = None
    distribution: str | None = None  # the package whose version names the framework's (in its environment)
    # where its models run on the target: "npu" ones are never timed on the build host (their runtime says the
    # same: Runtime.engine); the plan labels their figures simulated / estimated from the start
    engine: str = "cpu"

    @property
    def implemented(self) -> bool:
        return self.module is not None

    @property
    def install(self) -> str:
        if not self.implemented:
            return f"no adapter yet (planned in {self.planned_in})"
        if self.runs_in:
            return f"edgeopt env create {self.runs_in}"
        return f"pip install 'edgeopt[{self.extra}]'"


@dataclass(frozen=True)
class Registry:
    entries: tuple[FrameworkEntry, ...]
    availability: Mapping[str, Availability] = field(default_factory=lambda: MappingProxyType({}))

    def names(self) -> list[str]:
        return [e.name for e in self.entries]

    def entry(self, name: str) -> FrameworkEntry | None:
        return next((e for e in self.entries if e.name == name), None)

    def adapter(self, name: str):
        """The adapter object of a framework, checked against the written contract (frameworks/base.py)."""
        entry = self.entry(name)
        if entry is None or entry.module is None:
            raise PlanError(f"no adapter for framework {name!r}")
        return load_adapter(entry.module, FrameworkAdapter)

    def pass_class(self, pass_name: str):
        framework, _, short = pass_name.partition(".")
        entry = self.entry(framework)
        if entry is None or not entry.implemented:
            raise PlanError(f"unknown pass {pass_name!r}: no adapter {framework!r}")
        passes = self.adapter(framework).passes
        if short not in passes:
            near = closest(short, passes)
            raise PlanError(f"unknown pass {pass_name!r}; {framework} has: {', '.join(sorted(passes))}"
                            + (f" (did you mean {framework}.{near[0]}?)" if near else ""))
        return passes[short]

    def probed(self, environ: Mapping[str, str] | None = None) -> Registry:
        """A copy with every implemented adapter's probe() result (probes never raise); a framework that runs in
        a backend environment is available when that environment is made (`environ` says where they live)."""
        found = {e.name: self._environment_probe(e, environ) if e.runs_in else self.adapter(e.name).probe()
                 for e in self.entries if e.implemented}
        return replace(self, availability=MappingProxyType(found))

    @staticmethod
    def _environment_probe(entry: FrameworkEntry, environ: Mapping[str, str] | None) -> Availability:
        import os

        from edgeopt.envs import environment

        status = environment(entry.runs_in, os.environ if environ is None else environ).status()
        version = status.packages.get(entry.distribution) if entry.distribution else None
        return Availability(status.present, version, f"environment {entry.runs_in}: {status.detail}")

    def is_available(self, name: str) -> bool:
        status = self.availability.get(name)
        return bool(status and status.available)


def load_adapter(module: str, contract: type = FrameworkAdapter):
    adapter = getattr(importlib.import_module(module), "ADAPTER", None)
    if not isinstance(adapter, contract):
        raise TypeError(f"{module}.ADAPTER is not a {contract.__name__} (see edgeopt/frameworks/base.py)")
    return adapter


_GRAPH_TASKS = ("classification", "embedding", "ocr", "regression", "generic")


def default_registry() -> Registry:
    return Registry(
        entries=(
            FrameworkEntry("onnxruntime", "ONNX Runtime", _GRAPH_TASKS, "edgeopt.frameworks.onnxruntime", "onnx"),
            FrameworkEntry("hf", "Hugging Face → ONNX export (torch dynamo)", _GRAPH_TASKS,
                           "edgeopt.frameworks.hf_export", "hf"),
            FrameworkEntry("openvino", "OpenVINO + NNCF", _GRAPH_TASKS, "edgeopt.frameworks.openvino", "openvino"),
            FrameworkEntry("gguf", "llama.cpp (GGUF)", ("causal-lm",), "edgeopt.frameworks.gguf", "gguf"),
            FrameworkEntry("mlx", "MLX (mlx-lm)", ("causal-lm",), "edgeopt.frameworks.mlx", "mlx"),
            FrameworkEntry("rknn", "RKNN-Toolkit2 (Rockchip NPU)", ("classification", "generic", "ocr", "regression"),
                           "edgeopt.frameworks.rknn", runs_in="rknn", distribution="rknn-toolkit2", engine="npu"),
            FrameworkEntry("olive", "Olive (ONNX Runtime CUDA/TensorRT)", _GRAPH_TASKS, "edgeopt.frameworks.olive",
                           runs_in="olive", distribution="olive-ai"),
        )
    )
