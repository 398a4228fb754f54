"""One Olive workflow as an edgeopt pass: the input ONNX model, Olive's passes in the order given, the execution
provider they target; the workflow's output model copied into the step's folder. Olive reports success even when
it produced no model, so the output is looked for and its absence is the pass's failure."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from edgeopt.artifact import ModelArtifact
from edgeopt.frameworks.common import fresh_dir
from edgeopt.passes import Pass, PassConfig, PassContext

INSTALL = "edgeopt env create olive"
DEVICES = {"CPUExecutionProvider": "cpu", "CUDAExecutionProvider": "gpu", "TensorrtExecutionProvider": "gpu"}


class WorkflowConfig(PassConfig):
    passes: list[dict] = Field(min_length=1, description="Olive pass configs, run in order (each has a `type`)")
    execution_provider: Literal["CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"] = \
        "CPUExecutionProvider"
    precision: str = Field(default="fp32", description="what the workflow leaves the weights in (for the report)")

    @field_validator("passes")
    @classmethod
    def _typed(cls, passes: list[dict]) -> list[dict]:
        untyped = [i for i, p in enumerate(passes) if not isinstance(p.get("type"), str)]
        if untyped:
            raise ValueError(f"each Olive pass needs a `type` (an Olive pass class name); passes {untyped} have none")
        return passes


class Workflow(Pass):
    name = "workflow"
    Config = WorkflowConfig
    lowers_precision = True
    cost = 2
    summary = "an Olive workflow (its passes in order) on the ONNX model, run through Olive's Python API"

    def apply(self, config: WorkflowConfig, artifact: ModelArtifact | None, context: PassContext) -> ModelArtifact:
        if artifact is None or artifact.format != "onnx":
            raise ValueError(f"olive.workflow takes an ONNX model, not {artifact.format if artifact else 'nothing'}")
        from edgeopt.frameworks.base import require

        workflows = require("olive.workflows", "olive-ai (it runs in its own environment)", INSTALL)
        folder = fresh_dir(context.output_dir)
        scratch = folder / "olive"
        run_config = workflow_config(Path(artifact.path), config, scratch)
        (folder / "olive-config.json").write_text(json.dumps(run_config, indent=2))
        output = workflows.run(run_config)
        model = output_model(output, scratch / "output")
        files = _copy_model(model, folder)
        shutil.rmtree(scratch)  # Olive's cache of every intermediate model: the output is copied out
        from importlib import metadata

        notes = {"olive": f"olive-ai {metadata.version('olive-ai')}", "passes": [p["type"] for p in config.passes],
                 "execution_provider": config.execution_provider, "config": "olive-config.json"}
        # olive-config.json stays beside the model for inspection, out of the artifact: it names this build's paths,
        # and a package carries the model alone
        return ModelArtifact(path=str(folder / files[0]), files=tuple(files[1:]),
                             format="onnx", framework="onnxruntime", precision=config.precision,
                             lineage=(*artifact.lineage, context.lineage("olive.workflow", config, notes)))


def workflow_config(model: Path, config: WorkflowConfig, scratch: Path) -> dict:
    """Olive's run config: the model, a local system with the chosen execution provider, the passes in order, and
    no search (each step is one point: edgeopt's search chooses among steps)."""
    return {
        "input_model": {"type": "ONNXModel", "model_path": str(model)},
        "systems": {"local": {"type": "LocalSystem", "accelerators": [
            {"device": DEVICES[config.execution_provider], "execution_providers": [config.execution_provider]}]}},
        "passes": {f"p{i}_{p['type'].lower()}": p for i, p in enumerate(config.passes)},
        "host": "local", "target": "local", "evaluate_input_model": False,
        "cache_dir": str(scratch / "cache"), "output_dir": str(scratch / "output"), "log_severity_level": 3,
    }


def output_model(output, output_dir: Path) -> Path:
    """The workflow's output ONNX model. Olive returns without error when a pass produced nothing: then there is
    no output model, and that is the step's failure."""
    found = []
    if output is not None and output.has_output_model():
        for model in output.get_output_models():
            path = Path(model.model_path) if getattr(model, "model_path", None) else None
            if path is not None:
                found.append(path if path.suffix == ".onnx" else path / "model.onnx")
    found.append(output_dir / "model.onnx")
    for path in found:
        if path.is_file():
            return path
    raise RuntimeError(f"the Olive workflow finished without an output model (looked for {', '.join(map(str, found))}); "
                       "its log is in the worker's log")


def _copy_model(model: Path, folder: Path) -> list[str]:
    """model.onnx and any external-data file beside it (names relative to the folder; the model first)."""
    names = ["model.onnx"]
    shutil.copy2(model, folder / "model.onnx")
    for extra in model.parent.iterdir():
        if extra.is_file() and extra != model and extra.name.startswith(model.stem) and extra.suffix in (".data", ".bin"):
            shutil.copy2(extra, folder / extra.name)
            names.append(extra.name)
    return names
