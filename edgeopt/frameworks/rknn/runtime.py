"""The RKNN runtime as the build host has it: rknn-toolkit2's simulator (accuracy, labelled simulated), never a
timer. A board runs the .rknn with rknn-toolkit-lite2 (the package's run_example.py); the build's latency for an
RKNN candidate comes from the NPU's published figures (--device does not time RKNN models on a board yet)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import numpy as np

from edgeopt.artifact import ModelArtifact
from edgeopt.frameworks.base import GraphRuntime, GraphSession, InputInfo
from edgeopt.frameworks.rknn.toolkit import MODEL, built, call, read_recipe, toolkit_version

LITE_PACKAGE = "rknn-toolkit-lite2"


class SimulatorSession(GraphSession):
    """The candidate rebuilt from its recipe (same ONNX, config and calibration set) in the toolkit's simulator.
    Inputs go in as NCHW float32, as the ONNX model takes them."""

    execution_precision = "simulated NPU"

    def __init__(self, artifact: ModelArtifact):
        recipe = read_recipe(artifact.path)
        self.inputs = [InputInfo(name, tuple(size), np.dtype(np.float32))
                       for name, size in zip(recipe["inputs"], recipe["input_sizes"])]
        self.output_names = list(recipe["outputs"])
        self._rknn = built(Path(artifact.path).parent, recipe)
        call(self._rknn, "init_runtime")  # no target: the simulator

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        ordered = [feeds[info.name] for info in self.inputs]
        formats = ["nchw" if a.ndim == 4 else None for a in ordered]
        outputs = self._rknn.inference(inputs=ordered, data_format=formats if any(formats) else None)
        return [np.asarray(o, dtype=np.float32) for o in outputs]


class RknnRuntime(GraphRuntime):
    framework = "rknn"
    package_format = "rknn"
    engine: ClassVar[str] = "npu"
    timed_on_host: ClassVar[bool] = False  # the host has no NPU: its accuracy is the simulator's, its latency none

    def versions(self) -> dict[str, str]:
        return {"rknn-toolkit2": toolkit_version()}

    def load(self, artifact: ModelArtifact, threads: int | None) -> SimulatorSession:
        return SimulatorSession(artifact)

    def threads_on(self, artifact: ModelArtifact, cores: int) -> int:
        return 1  # one NPU core, whatever the CPU has

    def model_digest(self, artifact: ModelArtifact) -> str:
        """The .rknn and the recipe it was built from: two exports of one build differ in their bytes (the
        toolkit writes build-time metadata), so the recipe and its inputs are what make two candidates the same."""
        from edgeopt.hashing import file_digest, value_digest

        folder = Path(artifact.path).parent
        return value_digest([file_digest(folder / name) for name in artifact.files])

    def size_bytes(self, artifact: ModelArtifact) -> int:
        return Path(artifact.path).stat().st_size  # what the board loads; the recipe's files stay on the host

    def package_files(self, artifact: ModelArtifact) -> dict[str, Path]:
        """The .rknn alone: the recipe, its ONNX and calibration arrays are how it was made, not what a board runs."""
        return {MODEL: Path(artifact.path)}

    def runtime_requirement(self, built_with: Mapping[str, str]) -> dict:
        version = built_with.get("rknn-toolkit2") or toolkit_version()
        major, minor = (int(x) for x in version.split(".")[:2])
        # the board's runtime (librknnrt, which rknn-toolkit-lite2 wraps) must be of the toolkit's release line
        return {"package": LITE_PACKAGE, "version_range": f">={major}.{minor},<{major}.{minor + 1}",
                "measured_with": f"rknn-toolkit2 {version} (simulator)",
                "install": f"pip install '{LITE_PACKAGE}>={major}.{minor},<{major}.{minor + 1}' numpy  # on the board "
                           "(aarch64 wheels on PyPI; needs librknnrt.so of the same release in /usr/lib)"}

    def recorded_diagnosis(self, artifact: ModelArtifact) -> dict | None:
        """The toolkit's accuracy_analysis of the candidate, run when the pass built it (int8 only)."""
        analysis = next((entry.notes.get("layer_analysis") for entry in reversed(artifact.lineage)
                         if entry.notes.get("layer_analysis")), None)
        if analysis is None:
            return None
        return {"reference": "float (the toolkit's golden run of the same ONNX)", "by": analysis["by"], "samples": 1,
                "compared_layers": analysis["layers"],
                "layers": [{"layer": row["layer"], "op": row["op"], "cosine": row["cosine_single"],
                            "cosine_accumulated": row["cosine_entire"], "relative_error": None}
                           for row in analysis["most_divergent"]]}

    def io_spec(self, artifact: ModelArtifact) -> dict:
        recipe = read_recipe(artifact.path)
        return {"inputs": [{"name": name, "dtype": "float32", "shape": size}
                           for name, size in zip(recipe["inputs"], recipe["input_sizes"])],
                "outputs": [{"name": name, "dtype": "float32", "shape": "?"} for name in recipe["outputs"]],
                "target_platform": recipe["config"]["target_platform"]}
