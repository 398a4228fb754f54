"""What a build leaves for people and machines: report.html in a real browser, packages, the CI gate."""

import json
import re
import tarfile
from pathlib import Path

import pytest

from edgeopt.errors import ExitStatus
from tests.integration.browser import CHROMIUM, render

pytestmark = pytest.mark.onnxruntime
pytest.importorskip("onnxruntime")

LENIENT = {"accuracy_retained": 0.5, "speedup": 0.01, "memory_cut": -10.0}


@pytest.fixture
def built(cli, mlp_project, tmp_path):
    """One build whose gates something passes, so there is a selected model to package: three candidates that
    keep the model's dynamic batch (which one is selected depends on timing; a fixed-shape one, fp32-fixed or
    ov-fixed, would package the shape [1, 64])."""
    out = tmp_path / "build"
    search = {"frameworks": ["onnxruntime"], "only": ["int8-dynamic", "int8-static"]}  # and fp32-opt
    result = cli("build", str(mlp_project(gates=LENIENT, search=search)), "--out", str(out), "--quiet")
    assert result.status == ExitStatus.OK, result.stderr
    return out


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (make system-deps installs it)")
def test_report_html_renders_offline_in_headless_chromium_with_the_frontier(built, tmp_path):
    page = built / "report.html"
    html = page.read_text()
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=\"?https?:", html)  # nothing fetched: opens offline
    report = json.loads((built / "report.json").read_text())
    dom, console = render(page, tmp_path / "chromium")
    measured = sum(c["status"] == "ok" for c in [report["baseline"], *report["candidates"]])
    assert f'data-rendered="{measured}"' in dom  # the script ran and plotted every measured candidate
    assert dom.count('class="point"') == measured
    assert 'class="frontier-line"' in dom
    assert "data-errors" not in dom
    assert not console, console
    for section in ("Pareto frontier", "Progression", "Candidates", "Gates", "Plan", "Environment"):
        assert f"<h2>{section}</h2>" in dom
    assert "measured on device" in dom  # provenance badge (target host)


def test_package_verifies_and_its_example_runs(cli, built):
    result = cli("package", str(built))
    assert result.status == ExitStatus.OK, result.stderr
    archive = Path(result.stdout.strip())
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        descriptor = json.load(tar.extractfile("edgeopt-artifact.json"))
    assert {"edgeopt-artifact.json", "run_example.py", "model/model.onnx"} <= names
    assert descriptor["runtime"]["package"] == "onnxruntime" and descriptor["runtime"]["version_range"].startswith(">=")
    assert descriptor["io"]["inputs"] == [{"name": "x", "dtype": "float32", "shape": ["batch", 64]}]
    assert descriptor["metrics"]["provenance"] == "measured-device"
    assert set(descriptor["files"]) == names - {"edgeopt-artifact.json"}
    verified = cli("verify", str(archive))
    assert verified.status == ExitStatus.OK, verified.stderr
    assert "logits: shape [1, 10]" in verified.stdout


def _rewrite(archive: Path, out: Path, change) -> Path:
    with tarfile.open(archive) as src, tarfile.open(out, "w:gz") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read() if member.isfile() else None
            member, data = change(member, data)
            import io

            dst.addfile(member, io.BytesIO(data) if data is not None else None)
    return out


def test_verify_refuses_a_modified_file_and_a_path_escaping_the_archive(cli, built, tmp_path):
    archive = Path(cli("package", str(built)).stdout.strip())

    def flip_a_byte(member, data):
        if member.name == "model/model.onnx":
            data = data[:-1] + bytes([data[-1] ^ 1])
        return member, data

    modified = cli("verify", str(_rewrite(archive, tmp_path / "modified.tar.gz", flip_a_byte)))
    assert modified.status == ExitStatus.VERIFY_FAILED and "model/model.onnx was modified" in modified.stderr

    def escape(member, data):
        if member.name == "run_example.py":
            member.name = "../run_example.py"
        return member, data

    escaping = cli("verify", str(_rewrite(archive, tmp_path / "escape.tar.gz", escape)))
    assert escaping.status == ExitStatus.VERIFY_FAILED and "escapes the archive" in escaping.stderr


def test_a_build_without_a_selected_model_packages_only_a_named_candidate(cli, mlp_project, tmp_path):
    out = tmp_path / "strict"
    strict = {"accuracy_retained": 2.0}
    manifest = mlp_project(gates=strict, search={"max_candidates": 1, "frameworks": ["onnxruntime"]})
    built = cli("build", str(manifest), "--out", str(out), "--quiet")
    assert built.status == ExitStatus.GATES_FAILED, built.stderr
    refused = cli("package", str(out))
    assert refused.status == ExitStatus.USAGE and "--candidate" in refused.stderr
    named = cli("package", str(out), "--candidate", "fp32-opt-ext")
    assert named.status == ExitStatus.OK, named.stderr


def test_ci_mode_writes_one_junit_case_per_gate_and_exits_by_them(cli, mlp_project, tmp_path):
    summary_file = tmp_path / "github-summary.md"
    out = tmp_path / "ci"
    result = cli("build", str(mlp_project(gates=LENIENT, search={"max_candidates": 2})), "--out", str(out), "--ci",
                 environ={"GITHUB_STEP_SUMMARY": str(summary_file)})
    assert result.status == ExitStatus.OK, result.stderr
    junit = (out / "junit.xml").read_text()
    assert junit.count("<testcase ") == 3 and 'failures="0"' in junit
    for gate in ("accuracy_retained", "speedup", "memory_cut"):
        assert f'name="{gate}"' in junit
    assert "✅ PASS" in summary_file.read_text() and (out / "summary.md").exists()
    assert result.stdout.startswith("edgeopt gate edgeopt.mlp.host: PASS")

    # the same report against a stricter previous one: a regression fails the step
    previous = json.loads((out / "report.json").read_text())
    selected = next(c for c in previous["candidates"] if c["id"] == previous["selected"])
    selected["ratios"]["accuracy_retained"] *= 1.5
    (tmp_path / "previous.json").write_text(json.dumps(previous))
    gated = cli("gate", str(out), "--against", str(tmp_path / "previous.json"))
    assert gated.status == ExitStatus.GATES_FAILED
    junit = (out / "junit.xml").read_text()
    assert junit.count("<testcase ") == 7 and 'failures="1"' in junit and "regression.accuracy_retained" in junit


def test_ci_mode_fails_when_a_gate_fails(cli, mlp_project, tmp_path):
    out = tmp_path / "ci"
    gates = {**LENIENT, "speedup": 1000.0}  # only the speedup gate can fail
    result = cli("build", str(mlp_project(gates=gates, search={"max_candidates": 1})), "--out", str(out), "--ci")
    assert result.status == ExitStatus.GATES_FAILED
    junit = (out / "junit.xml").read_text()
    assert junit.count("<testcase ") == 3 and 'failures="1"' in junit and '<failure message="' in junit
