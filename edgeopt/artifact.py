"""What a pass consumes and produces. Plain data, JSON-serialisable, so it crosses process boundaries."""

from __future__ import annotations

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

    path: str = Field(description="the model file the runtime loads")
    format: Literal["onnx"] = "onnx"
    precision: str = "fp32"
    framework: str
    runtime_config: dict = Field(default_factory=dict, description="session options the runtime is given")
    lineage: tuple[LineageEntry, ...] = ()
