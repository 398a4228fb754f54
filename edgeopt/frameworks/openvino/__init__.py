"""OpenVINO + NNCF: ONNX → IR, NNCF post-training quantization (plain and accuracy-controlled), weight
compression, static shapes, runtime hints and execution precision; the OpenVINO runtime; IR packaging."""

from __future__ import annotations

from edgeopt.frameworks.base import FrameworkAdapter
from edgeopt.frameworks.common import probe_distribution
from edgeopt.frameworks.openvino.passes import PASSES
from edgeopt.frameworks.openvino.runtime import INSTALL, OpenVinoRuntime


class OpenVinoAdapter(FrameworkAdapter):
    name = "openvino"
    install = INSTALL
    passes = PASSES
    runtime = OpenVinoRuntime()

    def probe(self):
        return probe_distribution("openvino", "nncf", import_name="openvino")


ADAPTER = OpenVinoAdapter()
