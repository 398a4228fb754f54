"""What a pass consumes and produces. Plain data, JSON-serialisable, so it crosses process boundaries."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Provenance = Literal["measured-host", "measured-device", "simulated", "estimated", "reference"]


class LineageEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    step: str
    pass_name: str
    config: dict
    notes: dict = Field(default_factory=dict, description="what the pass reported (e.g. export max error)")


class ModelArtifact(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: str = Field(description="the model file (or folder) the runtime loads")
    files: tuple[str, ...] = Field(
        default=(), description="further files the model needs, relative to path's folder (weights, external data)")
    format: str = Field(default="onnx", pattern=r"^[a-z0-9][a-z0-9.+-]*$",
                        description="an open set, named by the adapters: onnx, openvino-ir, gguf, mlx, rknn, …")
    precision: str = "fp32"
    framework: str
    runtime_config: dict = Field(default_factory=dict, description="session options the runtime is given")
    lineage: tuple[LineageEntry, ...] = ()

    def all_paths(self) -> list[Path]:
        """Every file that makes up the model: what is hashed, cached and packaged."""
        main = Path(self.path)
        if main.is_dir():
            return sorted(p for p in main.rglob("*") if p.is_file())
        return [main, *(main.parent / name for name in self.files)]

    def rebased(self, folder: Path) -> ModelArtifact:
        """The same artifact with its files in another folder (a cache entry, a package)."""
        return self.model_copy(update={"path": str(folder / Path(self.path).name)})
