"""The contract every optimization pass meets."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from edgeopt.artifact import LineageEntry, ModelArtifact
from edgeopt.protocol import Validation


class PassConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class PassContext:
    """What a pass may use besides its input: declared up front so the build prepares only that."""

    output_dir: Path
    step: str  # the plan step this pass makes; recorded in the lineage
    task: str = "generic"  # the manifest's model task (some passes pick presets by it)
    calibration_data: Path | None = None  # .npz of model inputs (a language model: text), when the pass calibrates
    # leading tokens of a calibration text that the evaluation scores (a language model calibrates on its evaluation
    # text when the manifest names no calibration data): what is fitted on the text starts after them
    calibration_skip_tokens: int = 0
    timing_data: Path | None = None  # .npz of the batch the build times, present when the pass needs_timing_data
    source_path: Path | None = None  # the manifest's model, for passes that export it or read its config
    validation: Validation | None = None  # evaluation data, metric and reference outputs, when needs_validation
    # the build's folder for what is made once and read by several steps (each keys its files by their inputs)
    shared_dir: Path | None = None

    def lineage(self, pass_name: str, config: PassConfig, notes: dict | None = None) -> LineageEntry:
        return LineageEntry(step=self.step, pass_name=pass_name, config=config.model_dump(mode="json"),
                            notes=notes or {})


class NothingToDo(Exception):
    """Raised by a pass whose transformation does not apply to this model (a quantizer that finds no node
    to quantize): the step is recorded as skipped with this message, and no candidate is offered."""


class Pass:
    """One transformation of a model. Subclasses import their framework inside `apply` only."""

    name: ClassVar[str]
    Config: ClassVar[type[PassConfig]]
    needs_calibration: ClassVar[bool] = False
    needs_validation: ClassVar[bool] = False  # evaluation data, the metric and the baseline's reference outputs
    needs_timing_data: ClassVar[bool] = False  # the timed batch (its feeds' shapes), e.g. to fix shapes to it
    needs_source: ClassVar[bool] = False  # the manifest's model folder (e.g. its config.json), besides its input
    cost: ClassVar[int] = 1  # 0: configuration only, 1: a quick rewrite, 3: calibration or export
    # quantizes or casts weights: it needs a float graph (a graph that arrives quantized is not planned for it)
    lowers_precision: ClassVar[bool] = False
    # reads a graph that arrives quantized (QDQ) back as float: the passes that need a float graph may follow it
    restores_float: ClassVar[bool] = False
    summary: ClassVar[str] = ""

    @classmethod
    def environments(cls, config: PassConfig) -> tuple[str, ...]:
        """The environments (`edgeopt env create NAME`) the pass, so configured, runs code from when they are
        there: what is in each is part of the pass's cache key, and the plan names them."""
        return ()

    @classmethod
    def calibrates(cls, config: PassConfig) -> bool:
        """Whether the pass, so configured, reads calibration data (some only for some settings)."""
        return cls.needs_calibration

    def apply(self, config: PassConfig, artifact: ModelArtifact | None, context: PassContext) -> ModelArtifact:
        raise NotImplementedError
