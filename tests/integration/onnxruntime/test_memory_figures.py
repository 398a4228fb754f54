"""A timing process's memory figures are what a deployed process holding only numpy, the runtime and the
model would use: edgeopt's own modules (pydantic, the protocol's models) are left out."""

import json
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeopt.artifact import ModelArtifact
from edgeopt.protocol import TimingRequest, WindowRequest
from edgeopt.runners import Job, Limits
from edgeopt.runners.child import ChildTimer

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")

WEIGHTS = (1024, 4096)  # 16 MB of fp32 weights: the model's share of memory is plainly visible

# The same work as the timing worker's, in a process that imports nothing of edgeopt's.
BARE = """
import json, sys
import numpy as np
import onnxruntime as ort
model, data = sys.argv[1], sys.argv[2]
session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
x = np.load(data)["x"][:1]
for _ in range(30):
    session.run(None, {"x": x})
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        print(json.dumps(int(line.split()[1]) * 1024 / 1e6))
"""


def _model(path):
    weights = np.random.default_rng(0).standard_normal(WEIGHTS).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "wide",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", WEIGHTS[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", WEIGHTS[1]])],
        [numpy_helper.from_array(weights, "w")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def test_peak_rss_leaves_out_edgeopts_own_modules_and_matches_a_bare_process(tmp_path):
    model, data = tmp_path / "wide.onnx", tmp_path / "timing.npz"
    _model(model)
    np.savez(data, x=np.ones((4, WEIGHTS[0]), dtype=np.float32))
    artifact = ModelArtifact(path=str(model), format="onnx", precision="fp32", framework="onnxruntime")
    request = TimingRequest(adapter="edgeopt.frameworks.onnxruntime", artifact=artifact, timing_data=str(data))
    timer = ChildTimer(Job(request, str(tmp_path / "work"), Limits(timeout_s=120)), os.environ, sys.executable)
    try:
        window = timer.window(WindowRequest(warmup_runs=2, min_runs=30, max_runs=30, time_budget_s=0.0))
    finally:
        timer.close()
    bare = json.loads(subprocess.run([sys.executable, "-c", BARE, str(model), str(data)], capture_output=True,
                                     text=True, check=True).stdout)

    # pydantic and the protocol's models alone keep more than 10 MB resident (17-20 MB measured)
    assert timer.info.edgeopt_rss_mb > 8
    # with them the worker peaked 17-20 MB above the bare process; without them it is within a few MB
    assert abs(window.peak_rss_mb - bare) < 6, (window.peak_rss_mb, bare, timer.info.edgeopt_rss_mb)
    assert window.peak_rss_mb > timer.info.runtime_import_rss_mb + WEIGHTS[0] * WEIGHTS[1] * 4 / 1e6 * 0.9
