"""A project for the toy framework: weights, labelled data, a recipe, a manifest; and a Builder over it
with the in-process runner (no child processes, no heavy framework)."""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

import numpy as np

from edgeopt.builder import Builder, BuildResult
from edgeopt.cache import BuildCache
from edgeopt.catalog import FrameworkChain, load_catalog
from edgeopt.gates import load_gate_policies
from edgeopt.manifest import Manifest
from edgeopt.planner import plan
from edgeopt.recipes import Recipe
from edgeopt.registry import Availability, Registry
from edgeopt.runners.inprocess import InProcessRunner
from tests.unit import toy

FAST_MEASURE = {"warmup_runs": 1, "min_runs": 3, "max_runs": 6, "time_budget_s": 0.03, "rounds": 3, "max_rounds": 5}


def recipe(**extra_stages) -> Recipe:
    stages = [
        {"name": "convert", "passes": [
            {"id": "import", "pass": "toy.load", "role": "baseline", "input": "source", "config": {"delay_ms": 4}},
            {"id": "again", "pass": "toy.copy", "input": "baseline"}]},
        {"name": "quantize", "passes": [
            {"id": "int8", "pass": "toy.round", "input": "baseline", "config": {"bits": 8, "delay_ms": 1}},
            {"id": "int2", "pass": "toy.round", "input": "baseline", "config": {"bits": 2, "delay_ms": 0.5}},
            {"id": "empty", "pass": "toy.nothing", "input": "baseline"},
            {"id": "broken", "pass": "toy.broken", "input": "baseline"}]},
        {"name": "accelerate", "passes": [
            {"id": "tuned", "pass": "toy.settings", "input": "leader", "space": {"delay_ms": [0.5, 3]}}]},
    ]
    return Recipe(framework="toy", stages=stages)


def write_project(root: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(16, 8)).astype(np.float32)
    np.save(root / "w.npy", weights)
    x = rng.normal(size=(64, 16)).astype(np.float32)
    np.savez(root / "eval.npz", x=x, labels=(x @ weights).argmax(axis=1))
    return root / "w.npy"


def manifest(root: Path, **changes) -> Manifest:
    # the toy reads its source itself (its `load` step, like an exporter): no ONNX file is claimed
    data = {"name": "toy", "model": {"path": str(root / "w.npy"), "format": "hf-transformers", "task": "classification"},
            "evaluation": {"data": {"type": "npz", "path": str(root / "eval.npz")}, "metric": {"name": "top1", "output": "y"}},
            "measure": FAST_MEASURE, "gates": {"memory_cut": -10.0}, "base_dir": str(root)}
    for key, value in changes.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) and isinstance(data.get(key), dict) else value
    return Manifest.model_validate(data)


def registry(module: str = "tests.unit.toy") -> Registry:
    return Registry((toy.entry(module),), MappingProxyType({"toy": Availability(True, "toy 1.0")}))


class SleepTimer:
    """The toy's runs sleep rather than compute, so other processes cannot slow them: the machine's load
    readings are dropped, and the build's logic is tested the same on a busy test machine."""

    def __init__(self, timer):
        self._timer, self.info = timer, timer.info

    def window(self, request):
        window = self._timer.window(request)
        return window.model_copy(update={"other_busy_cores": 0.0, "steal_share": 0.0})

    def close(self):
        self._timer.close()


class SleepTimingRunner(InProcessRunner):
    def open_timer(self, job):
        return SleepTimer(super().open_timer(job))


def build(root: Path, out: str = "out", cache: Path | None = None, timing_runner=None, module: str = "tests.unit.toy",
          the_recipe: Recipe | None = None, env_keys: dict | None = None, **changes) -> BuildResult:
    the_manifest = manifest(root, **changes)
    target = load_catalog().resolve("rk3566")
    target = target.model_copy(update={"frameworks": FrameworkChain(preferred=["toy"], reason="tests")})
    reg = registry(module)
    the_plan = plan(the_manifest, target, {"toy": the_recipe or recipe()}, reg, load_gate_policies())
    return Builder(the_plan, the_manifest, reg, root / out, InProcessRunner(), timing_runner or SleepTimingRunner(),
                   cache=BuildCache(cache) if cache else None, env_keys=env_keys).run()
