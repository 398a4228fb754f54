"""The contract every optimization pass meets."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from edgeopt.artifact import ModelArtifact


class PassConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class PassContext:
    """What a pass may use besides its input: declared up front so the build prepares only that."""

    output_dir: Path
    calibration_data: Path | None = None  # .npz of model inputs, present when the pass needs_calibration
    source_path: Path | None = None  # the manifest's model, for passes that export it
    validation_data: Path | None = None  # .npz of evaluation inputs and labels, when the pass needs_validation
    extra: dict = field(default_factory=dict)


class Pass:
    """One transformation of a model. Subclasses import their framework inside `apply` only."""

    name: ClassVar[str]
    Config: ClassVar[type[PassConfig]]
    needs_calibration: ClassVar[bool] = False
    needs_validation: ClassVar[bool] = False  # evaluation data, the metric and the baseline's reference outputs
    cost: ClassVar[int] = 1  # 0: configuration only, 1: a quick rewrite, 3: calibration or export
    summary: ClassVar[str] = ""

    def precision(self, config: PassConfig, input_precision: str) -> str:
        return input_precision

    def apply(self, config: PassConfig, artifact: ModelArtifact | None, context: PassContext) -> ModelArtifact:
        raise NotImplementedError
