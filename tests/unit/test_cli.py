import json
import subprocess
import sys
from pathlib import Path

from edgeopt.errors import ExitStatus

REPO = Path(__file__).resolve().parents[2]
MINILM = str(REPO / "examples" / "minilm" / "manifest.yaml")


def test_targets_lists_the_catalog(cli):
    result = cli("targets")
    assert result.status == ExitStatus.OK
    assert "rk3566-orangepi3b" in result.stdout and "host" in result.stdout


def test_one_target_shows_facts_with_sources(cli):
    result = cli("targets", "rk3566")
    assert result.status == ExitStatus.OK
    assert "Cortex-A55".lower() in result.stdout.lower() and "S2: adafruit" in result.stdout


def test_unknown_target_exits_2_with_closest_ids(cli):
    result = cli("targets", "rk3568")
    assert result.status == ExitStatus.USAGE
    assert "unknown target 'rk3568'" in result.stderr and "rk3566" in result.stderr
    assert "Traceback" not in result.stderr


def test_schema_is_json_schema_of_the_manifest(cli):
    result = cli("schema")
    schema = json.loads(result.stdout)
    assert {"model", "evaluation", "gates", "measure"} <= set(schema["properties"])
    assert "base_dir" not in schema["properties"]


def test_plan_explains_choice_and_rejections_for_a_board(cli):
    result = cli("plan", MINILM, "--target", "rk3566")
    assert result.status == ExitStatus.OK, result.stderr
    assert "framework: onnxruntime" in result.stdout
    assert "rejected rknn" in result.stdout and "rejected gguf" in result.stdout
    assert "measured-host" in result.stdout and "extras needed" in result.stdout


def test_plan_json_is_the_frozen_plan(cli):
    plan = json.loads(cli("plan", MINILM, "--json").stdout)
    assert plan["framework"] == plan["frameworks"][0] and plan["steps"][0]["pass_name"] == "hf.export_onnx"
    assert plan["baseline_framework"] == "onnxruntime" and plan["baseline"] == "export"


def test_the_search_is_narrowed_from_the_command_line(cli):
    """--search, --max-candidates and --frameworks replace the manifest's search: for one run."""
    result = cli("plan", MINILM, "--search", "cheap-first", "--max-candidates", "3", "--frameworks", "onnxruntime,hf")
    assert result.status == ExitStatus.OK, result.stderr
    assert "search: cheap-first, at most 3 candidates" in result.stdout
    assert "rejected openvino: left out by search.frameworks" in result.stdout
    refused = cli("plan", MINILM, "--max-candidates", "0")
    assert refused.status == ExitStatus.USAGE and "--max-candidates" in refused.stderr and "Traceback" not in refused.stderr
    unknown = cli("plan", MINILM, "--frameworks", "openvno")
    assert unknown.status == ExitStatus.USAGE and "did you mean: openvino" in unknown.stderr


def test_only_keeps_the_steps_asked_for_what_they_read_and_the_baseline(cli):
    result = cli("plan", MINILM, "--only", "int8-static,tuned-iot2-emaoff", "--json")
    assert result.status == ExitStatus.OK, result.stderr
    plan = json.loads(result.stdout)
    steps = {s["id"]: s for s in plan["steps"]}
    # int8-static reads the last convert's model, and that one reads the baseline's; the accelerate step reads
    # whichever candidate leads when it runs
    assert set(steps) == {plan["baseline"], "fp32-opt", "int8-static", "tuned-iot2-emaoff"}
    assert steps["int8-static"]["input"] == "fp32-opt" and steps["fp32-opt"]["input"] == plan["baseline"]
    left_out = {s["id"]: s["reason"] for s in plan["skipped"]}
    assert "left out by search.only" in left_out["ov-int8"] and "left out by search.only" in left_out["fp16"]
    unknown = cli("plan", MINILM, "--only", "int8-statik")
    assert unknown.status == ExitStatus.USAGE and "search.only" in unknown.stderr and "int8-static" in unknown.stderr


def test_lean_mapped_reads_leans_input_and_gives_leans_settings_itself(cli):
    # so that the two are timed in the same rounds; "cores" is resolved inside the nested settings too
    result = cli("plan", MINILM, "--target", "rk3566", "--frameworks", "onnxruntime", "--json")
    assert result.status == ExitStatus.OK, result.stderr
    steps = {s["id"]: s for s in json.loads(result.stdout)["steps"]}
    lean, mapped = steps["lean"], steps["lean-mapped"]
    assert mapped["input"] == lean["input"] == "@leader-memory"
    assert lean["config"]["intra_op_threads"] == 4  # the RK3566's four Cortex-A55 cores
    assert mapped["config"]["session"] == lean["config"]


def test_bad_manifest_exits_2_with_file_key_and_choice(cli, tmp_path):
    manifest = tmp_path / "m.yaml"
    manifest.write_text("name: x\nmodel: {path: m.onnx, format: onnx}\nevaluation: {data: {type: npz, path: e.npz}, "
                        "metric: {name: top2}}\n")
    result = cli("plan", str(manifest))
    assert result.status == ExitStatus.USAGE
    assert str(manifest) in result.stderr and "evaluation.metric.name" in result.stderr and "top1" in result.stderr
    assert "Traceback" not in result.stderr
    assert "Traceback" in cli("--traceback", "plan", str(manifest)).stderr


def test_missing_manifest_file_and_bad_flag_exit_2(cli, tmp_path):
    assert cli("plan", str(tmp_path / "nope.yaml")).status == ExitStatus.USAGE
    result = cli("build", MINILM, "--taget", "host")
    assert result.status == ExitStatus.USAGE and "--taget" in result.stderr


def test_cli_imports_and_plans_with_no_framework_installed():
    """Block every heavy framework at import; the CLI must still list targets and plan, and say what to install."""
    blocked = ["torch", "onnxruntime", "onnx", "transformers", "openvino", "nncf", "tokenizers", "PIL", "llama_cpp", "mlx"]
    script = f"""
import importlib.abc, importlib.util, sys
BLOCKED = {blocked!r}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in BLOCKED:
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
from edgeopt.cli import main
assert main(['targets']) == 0
status = main(['build', {MINILM!r}, '--out', sys.argv[1]])
assert status == 4, status
assert not any(m.split('.')[0] in BLOCKED for m in sys.modules), [m for m in sys.modules if m.split('.')[0] in BLOCKED]
"""
    import tempfile

    with tempfile.TemporaryDirectory() as out:
        completed = subprocess.run([sys.executable, "-c", script, out], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr
    assert "pip install 'edgeopt[" in completed.stderr


def test_output_into_a_closed_pipe_is_not_an_internal_error():
    # `edgeopt plan M | head`: the reader leaves; writing or flushing raises BrokenPipeError. The read end is
    # closed before edgeopt starts, so every write it makes meets a closed pipe.
    import os

    read, write = os.pipe()
    os.close(read)
    try:
        result = subprocess.run([sys.executable, "-m", "edgeopt", "schema"], stdout=write, stderr=subprocess.PIPE,
                                text=True, timeout=120)
    finally:
        os.close(write)
    assert result.returncode == 0, result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_a_closed_pipe_inside_a_command_is_not_an_internal_error():
    from edgeopt.cli import Environment, main

    class ClosedPipe:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(32, "Broken pipe")

    import io

    stderr = io.StringIO()
    assert main(["schema"], Environment(stdout=ClosedPipe(), stderr=stderr, environ={})) == ExitStatus.OK
    assert stderr.getvalue() == ""
