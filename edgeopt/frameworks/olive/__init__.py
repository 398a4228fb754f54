"""Olive (olive-ai): a step is one Olive workflow (its passes, in order) run through Olive's Python API in the olive
environment (`edgeopt env create olive`). Its output model is an ONNX model that edgeopt measures with ONNX Runtime
like any other candidate, so every candidate is timed and gated the same way; Olive's own evaluation is not used.
A pass provider only (no runtime of its own)."""

from __future__ import annotations

from edgeopt.frameworks.base import Availability, FrameworkAdapter
from edgeopt.frameworks.olive.workflow import INSTALL, Workflow


class OliveAdapter(FrameworkAdapter):
    name = "olive"
    install = INSTALL
    passes = {Workflow.name: Workflow}

    def probe(self) -> Availability:
        """Importable in this interpreter (true inside the olive environment; the registry asks the environment
        itself when it plans)."""
        from edgeopt.frameworks.common import probe_distribution

        return probe_distribution("olive-ai", import_name="olive")


ADAPTER = OliveAdapter()
