"""A fake framework adapter for planner tests: real pass contract, no framework behind it."""

from typing import Literal

from edgeopt.frameworks.base import Availability, FrameworkAdapter
from edgeopt.passes import Pass, PassConfig


class ShrinkConfig(PassConfig):
    bits: Literal[4, 8] = 8
    threads: int = 1


class Shrink(Pass):
    name = "shrink"
    Config = ShrinkConfig


class Calibrated(Pass):
    name = "calibrated"
    Config = ShrinkConfig
    needs_calibration = True


class FakeAdapter(FrameworkAdapter):
    name = "fake"
    install = "pip install fake"
    passes = {"shrink": Shrink, "calibrated": Calibrated}

    def probe(self):
        return Availability(True, "fake 1.0")


ADAPTER = FakeAdapter()
