"""What a board's timer sends back is checked: a login banner or a malformed answer fails that candidate with
the reason, never the build with an internal error. (The whole ssh path runs against a real sshd in
tests/integration/device.)"""

from __future__ import annotations

import subprocess
import sys

import pytest

from edgeopt.device import DeviceTimer
from edgeopt.protocol import WindowRequest
from edgeopt.runners import TimingFailed


def timer_answering(tmp_path, *lines: str) -> DeviceTimer:
    """A DeviceTimer whose connection is a local process printing `lines`: the parsing, without ssh."""
    script = "import sys\n" + "".join(f"print({line!r}, flush=True)\n" for line in lines) + "sys.stdin.read()\n"
    timer = DeviceTimer.__new__(DeviceTimer)
    timer.timeout, timer.log, timer.remote, timer._stderr = 10, tmp_path / "device.log", None, None
    timer._process = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      text=True)
    return timer


@pytest.mark.parametrize("answer", ["Welcome to Armbian!", "[1, 2]", '{"result": {}}', '{"status": "ok", "result": 3}'])
def test_an_answer_outside_the_protocol_fails_the_candidate_with_what_came_back(tmp_path, answer):
    timer = timer_answering(tmp_path, answer)
    with pytest.raises(TimingFailed, match="outside the protocol"):
        timer._ask({"op": "open"})
    timer.close()


def test_a_window_missing_its_figures_fails_the_candidate(tmp_path):
    timer = timer_answering(tmp_path, '{"status": "ok", "result": {"samples_ms": [1.0]}}')
    with pytest.raises(TimingFailed, match="cannot read"):
        timer.window(WindowRequest(warmup_runs=1, min_runs=1, max_runs=1, time_budget_s=0.1))
    timer.close()


def test_an_error_from_the_board_carries_its_install_command(tmp_path):
    timer = timer_answering(tmp_path, '{"status": "failed", "error": "no onnxruntime", '
                                      '"install": "pip install onnxruntime numpy"}')
    with pytest.raises(TimingFailed, match="no onnxruntime — on the board: pip install onnxruntime numpy"):
        timer._ask({"op": "open"})
    timer.close()
