"""Where a build writes: the output folder's layout, in one place."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from edgeopt.candidates import CandidateRecord


@dataclass(frozen=True)
class OutputLayout:
    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def shared(self) -> Path:
        """What passes make once per build and several steps read (an importance matrix fitted on the calibration
        text): keyed by what it was made from, so a step finds it only if it would have made the same."""
        return self.root / "shared"

    def step(self, step_id: str) -> Path:
        return self.root / "steps" / step_id

    def model(self, step_id: str) -> Path:
        return self.step(step_id) / "model"

    def work(self, step_id: str, kind: str) -> Path:
        """A worker's folder for one job (request, response, log, traceback)."""
        return self.step(step_id) / kind

    def outputs(self, record_id: str) -> Path:
        """A model's outputs on the evaluation data, as the host computed them."""
        return self.step(record_id) / "outputs.npy"

    @property
    def reference_outputs(self) -> Path:
        """The baseline's outputs on the evaluation data, for metrics that compare with them."""
        return self.outputs("baseline")

    @property
    def selected(self) -> Path:
        return self.root / "selected"

    def prepare(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def copy_selected(self, record: CandidateRecord) -> Path:
        """selected/ appears whole or not at all: filled beside it, then renamed into place."""
        staging = self.root / ".selected.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        main = Path(record.model_path)
        for path in map(Path, record.model_files):
            target = staging / (path.relative_to(main) if main.is_dir() else path.relative_to(main.parent))
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        (staging / "runtime_config.json").write_text(json.dumps(record.runtime_config, indent=2))
        if self.selected.exists():
            shutil.rmtree(self.selected)
        staging.replace(self.selected)
        return self.selected
