"""RKNN (rknn-toolkit2): ONNX → .rknn for Rockchip NPUs (RK3566/RK3568/RK3588…), fp16 and calibrated int8; accuracy
from the toolkit's simulator; packages for rknn-toolkit-lite2 on the board. Everything runs in the rknn environment
(`edgeopt env create rknn`): the toolkit's pins cannot share edgeopt's own."""

from __future__ import annotations

from edgeopt.frameworks.base import Availability, FrameworkAdapter
from edgeopt.frameworks.rknn.passes import PASSES
from edgeopt.frameworks.rknn.runtime import RknnRuntime
from edgeopt.frameworks.rknn.toolkit import INSTALL


class RknnAdapter(FrameworkAdapter):
    name = "rknn"
    install = INSTALL
    passes = PASSES
    runtime = RknnRuntime()

    def probe(self) -> Availability:
        """Importable in this interpreter (true inside the rknn environment; the registry asks the environment
        itself when it plans, since edgeopt's own interpreter never has the toolkit)."""
        from edgeopt.frameworks.common import probe_distribution

        return probe_distribution("rknn-toolkit2", import_name="rknn")


ADAPTER = RknnAdapter()
