"""ONNX Runtime: graph optimization, int8 (dynamic, static QDQ), fp16, session tuning; its runtime."""

from __future__ import annotations

from edgeopt.frameworks.base import FrameworkAdapter
from edgeopt.frameworks.common import probe_distribution
from edgeopt.frameworks.onnxruntime.passes import PASSES
from edgeopt.frameworks.onnxruntime.runtime import INSTALL, OnnxRuntime


class OnnxRuntimeAdapter(FrameworkAdapter):
    name = "onnxruntime"
    install = INSTALL
    passes = PASSES
    runtime = OnnxRuntime()

    def probe(self):
        return probe_distribution("onnxruntime", "onnx", import_name="onnxruntime")


ADAPTER = OnnxRuntimeAdapter()
