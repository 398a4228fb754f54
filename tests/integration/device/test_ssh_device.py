"""Timing on a board over ssh, against a real sshd this test starts on loopback (Debian's openssh-server,
throwaway keys): once with the machine's Python, once with the emulated aarch64 one as the board's."""

import getpass
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgeopt.errors import ExitStatus

pytestmark = [pytest.mark.onnxruntime, pytest.mark.device]
pytest.importorskip("onnxruntime")
SSHD = "/usr/sbin/sshd"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    if not Path(SSHD).exists() or shutil.which("ssh") is None or os.geteuid() != 0:
        if os.environ.get("EDGEOPT_REQUIRE_TOOLS") == "1":
            pytest.fail("openssh-server/ssh (and root, for sshd's privilege separation) are required here")
        pytest.skip("needs Debian's openssh-server and root (make system-deps installs it)")
    root = tmp_path_factory.mktemp("sshd")
    for name in ("host", "client"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / name)], check=True)
    (root / "authorized_keys").write_text((root / "client.pub").read_text())
    port = _free_port()
    (root / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {root / 'host'}\nAuthorizedKeysFile {root / 'authorized_keys'}\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        f"StrictModes no\nPidFile {root / 'sshd.pid'}\nSubsystem sftp internal-sftp\n")
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation folder
    server = subprocess.Popen([SSHD, "-D", "-e", "-f", str(root / "sshd_config")], stderr=(root / "sshd.log").open("w"))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        server.kill()
        pytest.fail(f"sshd did not start: {(root / 'sshd.log').read_text()}")
    url = (f"ssh://{getpass.getuser()}@127.0.0.1:{port}?key={root / 'client'}&known_hosts={root / 'known_hosts'}")
    yield url, port
    server.kill()
    server.wait()


def _remote_folders() -> set[str]:
    return {p.name for p in Path("/tmp").glob("edgeopt-*") if p.is_dir() and len(p.name) == len("edgeopt-XXXXXX")}


def build(cli, manifest, out: Path, device: str):
    return cli("build", str(manifest), "--target", "rk3566", "--out", str(out), "--quiet", "--device", device)


def test_candidates_are_timed_on_the_board_and_gates_read_its_figures(cli, mlp_project, tmp_path, sshd):
    url, _ = sshd
    before = _remote_folders()
    manifest = mlp_project(search={"frameworks": ["onnxruntime"], "max_candidates": 3},
                           measure={"warmup_runs": 2, "min_runs": 5, "max_runs": 30, "time_budget_s": 0.3,
                                    "rounds": 3, "emulated_samples": 0})
    # the board's Python: one with onnxruntime and numpy, as a board prepared with the package's install line
    result = build(cli, manifest, tmp_path / "out", f"{url}&python={sys.executable}")
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert result.status in (ExitStatus.OK, ExitStatus.GATES_FAILED), result.stderr
    assert report["plan"]["target_evaluation"]["device_timing"].startswith("ssh://")
    measured = [report["baseline"], *[c for c in report["candidates"] if c["status"] == "ok"]]
    assert len(measured) >= 3, [(c["id"], c["error"]) for c in report["candidates"]]
    for c in measured:
        assert c["metrics"]["sources"]["latency_ms"] == "measured-device" and c["metrics"]["latency_ms"]["p50"] > 0
        assert c["metrics"]["target"]["latency_ms"]["provenance"] == "measured-device"
        # the board's runtime alone, read before the model loads: what the memory gate's reach is judged by
        assert c["metrics"]["peak_rss_mb"] > c["metrics"]["runtime_import_rss_mb"] > 0
        if c["id"] != "baseline":
            assert c["gates"]["speedup"]["provenance"] == "measured-device" and c["ratios"]["speedup_ci"]
    assert _remote_folders() == before  # the board keeps nothing


def test_a_board_without_the_runtime_gets_the_install_command(cli, mlp_project, tmp_path, sshd):
    url, _ = sshd
    bare = tmp_path / "bare-python"  # a Python that finds no onnxruntime (nor numpy): a fresh board
    bare.write_text(f"#!/bin/sh\nexec {sys.executable} -I -S \"$@\"\n")
    bare.chmod(0o755)
    manifest = mlp_project(search={"frameworks": ["onnxruntime"], "max_candidates": 1},
                           measure={"emulated_samples": 0, "rounds": 2})
    result = build(cli, manifest, tmp_path / "out", f"{url}&python={bare}")
    assert result.status == ExitStatus.USAGE and "pip install onnxruntime numpy" in result.stderr
    baseline = json.loads((tmp_path / "out" / "report.json").read_text())["baseline"]
    assert baseline["status"] == "failed" and "the board has no onnxruntime" in baseline["error_detail"]
    assert "pip install onnxruntime numpy" in baseline["error_detail"]


@pytest.mark.emulation
def test_the_board_can_be_the_emulated_aarch64_python(cli, mlp_project, tmp_path, sshd, aarch64_env):
    from edgeopt.estimate.cores import load_cores

    url, _ = sshd
    board_python = aarch64_env.python(load_cores()["cortex-a55"])
    manifest = mlp_project(search={"frameworks": ["onnxruntime"], "max_candidates": 2},
                           measure={"warmup_runs": 1, "min_runs": 3, "max_runs": 5, "time_budget_s": 0.2,
                                    "rounds": 2, "emulated_samples": 0})
    result = build(cli, manifest, tmp_path / "out", f"{url}&python={board_python}")
    assert result.status in (ExitStatus.OK, ExitStatus.GATES_FAILED), result.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    measured = [c for c in [report["baseline"], *report["candidates"]] if c["status"] == "ok"]
    assert len(measured) >= 2, [(c["id"], c["error"]) for c in report["candidates"]]  # the baseline and a candidate
    for c in measured:
        assert c["metrics"]["timed_on"] == "aarch64"  # the board's runtime build, not the host's
        assert "(aarch64)" in c["metrics"]["target"]["latency_ms"]["source"]
    gated = [c for c in measured if c["gates"]]
    assert gated and all(c["gates"]["speedup"]["provenance"] == "measured-device" for c in gated)


def test_an_unreachable_board_fails_each_candidate_with_the_reason(cli, mlp_project, tmp_path, sshd):
    url, port = sshd
    closed = _free_port()
    manifest = mlp_project(search={"frameworks": ["onnxruntime"], "max_candidates": 1},
                           measure={"emulated_samples": 0, "rounds": 2})
    result = build(cli, manifest, tmp_path / "out", url.replace(f":{port}", f":{closed}"))
    assert result.status == ExitStatus.USAGE and "cannot reach the device" in result.stderr
    baseline = json.loads((tmp_path / "out" / "report.json").read_text())["baseline"]
    assert baseline["status"] == "failed" and "cannot reach the device" in baseline["error"]
    assert "Connection refused" in baseline["error_detail"]
