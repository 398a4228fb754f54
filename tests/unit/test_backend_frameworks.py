"""The frameworks that run in backend environments (rknn, olive), without their toolchains: the pinned requirements,
the planner's choice for Rockchip boards and NVIDIA targets (with and without the environment), the toolkit's
analysis text and file layout, Olive's run config, and a backend interpreter for jobs."""

import json
import sys
from pathlib import Path
from types import MappingProxyType

import pytest

from edgeopt.artifact import LineageEntry, ModelArtifact
from edgeopt.catalog import load_catalog
from edgeopt.envs.backend import requirement_groups, requirements_text
from edgeopt.errors import MissingDependency
from edgeopt.gates import load_gate_policies
from edgeopt.manifest import Manifest
from edgeopt.planner import plan, require_installed
from edgeopt.recipes import load_recipes
from edgeopt.registry import Availability, Registry, default_registry


def manifest(task="classification") -> Manifest:
    return Manifest(name="m", model={"path": "/m.onnx", "format": "onnx", "task": task},
                    evaluation={"data": {"type": "npz", "path": "/e.npz"}, "metric": {"name": "top1"}})


def registry(rknn_made: bool) -> Registry:
    reg = default_registry()
    return Registry(reg.entries, MappingProxyType({e.name: Availability(e.name != "rknn" or rknn_made, "1.0")
                                                   for e in reg.entries if e.implemented}))


def board_plan(target_id="rk3566", rknn_made=True, task="classification"):
    return plan(manifest(task), load_catalog().resolve(target_id), load_recipes(), registry(rknn_made),
                load_gate_policies())


def test_the_rknn_requirements_pin_the_cpu_torch_and_install_the_toolkit_without_its_declared_pins():
    together, no_deps = requirement_groups(requirements_text("rknn"))
    assert no_deps == ["rknn-toolkit2==2.5.0"]
    assert "torch==2.13.0" in together  # the CPU wheel on disk; an open torch requirement pulls a CUDA build
    assert all("==" in line for line in together)  # every pin exact: the environment's key says what it holds
    assert {"numpy==1.26.4", "onnx==1.18.0", "protobuf==4.25.4"} <= set(together)


def test_requirement_groups_reads_comments_and_blank_lines():
    text = "# a comment\n\nfoo==1  # why foo\nbar==2  # --no-deps\n  baz==3\n"
    assert requirement_groups(text) == (["foo==1", "baz==3"], ["bar==2"])


@pytest.mark.parametrize("target_id", ["rk3566", "rk3588"])
def test_a_rockchip_board_plans_rknn_steps_first_in_the_rknn_environment(target_id):
    p = board_plan(target_id)
    assert p.framework == "rknn" and p.frameworks[0] == "rknn" and "onnxruntime" in p.frameworks
    rknn = [s for s in p.steps if s.pass_name == "rknn.convert"]
    assert [s.id for s in rknn] == ["rknn-fp16", "rknn-int8", "rknn-int8-mmse", "rknn-int8-kl", "rknn-hybrid-fl2",
                                    "rknn-hybrid-fl8"]
    assert all(s.runs_in == "rknn" and "rknn" in s.environments for s in rknn)
    assert all(s.config["target_platform"] == target_id for s in rknn)  # the target's chip, from targets/
    assert {s.config["quantized_algorithm"] for s in rknn if s.config["precision"] == "int8"} == \
        {"normal", "mmse", "kl_divergence"}
    assert not [s for s in p.steps if s.pass_name != "rknn.convert" and s.runs_in]  # ONNX Runtime runs at home
    figures = p.target_evaluation.by_framework
    assert figures["rknn"].accuracy == "simulated" and figures["rknn"].latency == "roofline"
    assert "no NPU" in figures["rknn"].why


def test_the_plan_text_names_the_environment_each_rknn_step_runs_in():
    from edgeopt.plan_text import render_plan

    text = render_plan(board_plan(), registry(True))
    assert "environment rknn" in text and "rknn-int8-mmse" in text


def test_without_the_environment_the_build_stops_with_the_create_command():
    reg = default_registry().probed({"EDGEOPT_ENV_DIR": "/nonexistent/edgeopt-envs"})
    assert not reg.is_available("rknn") and reg.entry("rknn").install == "edgeopt env create rknn"
    assert "environment rknn" in reg.availability["rknn"].detail
    p = plan(manifest(), load_catalog().resolve("rk3566"), load_recipes(), reg, load_gate_policies())
    if reg.is_available("onnxruntime"):
        # ONNX Runtime is installed here: it is searched, and rknn is named as what to make for the NPU
        assert "rknn" not in p.frameworks
    else:
        assert p.framework == "rknn"
        with pytest.raises(MissingDependency) as caught:
            require_installed(p)
        assert "edgeopt env create rknn" in str(caught.value) and caught.value.exit_status == 4


def test_a_job_of_a_framework_in_a_missing_environment_is_refused_with_the_create_command(tmp_path):
    from edgeopt.builder.requests import Requests

    requests = Requests.__new__(Requests)  # only the interpreter lookup is exercised
    requests.registry, requests.interpreters = default_registry(), {}
    with pytest.raises(MissingDependency) as caught:
        requests._python("rknn")
    assert "edgeopt env create rknn" in str(caught.value)
    assert requests._python("onnxruntime") is None
    requests.interpreters = {"rknn": "/envs/rknn/bin/python"}
    assert requests._python("rknn") == "/envs/rknn/bin/python"


def test_npu_frameworks_are_the_ones_whose_runtime_is_not_timed_on_the_host():
    reg = default_registry()
    runtimes = {e.name: (e, reg.adapter(e.name).runtime) for e in reg.entries if e.implemented}
    assert runtimes["rknn"][1].engine == "npu"
    for name, (entry, runtime) in runtimes.items():
        if runtime is not None:  # None: a pass provider only (the exporter)
            assert runtime.engine == entry.engine and runtime.timed_on_host == (entry.engine == "cpu"), name


def test_the_toolkit_error_analysis_parses_into_layers():
    from edgeopt.frameworks.rknn.passes import parse_error_analysis

    text = """
# simulator_error: calculate the output error of each layer of the simulator (compared to the 'golden' value).
#              entire: output error of each layer between 'golden' and 'simulator', these errors will accumulate.
#              single: single-layer output error between 'golden' and 'simulator', can better reflect the
layer_name                          simulator_error
                               entire              single
                            cos      euc        cos      euc
--------------------------------------------------------------
[Input] x                 1.00000 | 0.0        1.00000 | 0.0
[exDataConvert] x_int8    0.99998 | 0.0451     0.99998 | 0.0451
[Conv] /0/Conv_output_0   0.99987 | 0.3120     0.99990 | 0.2891
[Relu] /1/Relu_output_0   0.99979 | 0.11214    0.99999 | 0.11214
[Gemm] logits             0.99701 | 1.5e-02    0.99720 | 0.0139
"""
    rows = parse_error_analysis(text)
    assert [r["layer"] for r in rows] == ["x", "x_int8", "/0/Conv_output_0", "/1/Relu_output_0", "logits"]
    assert rows[-1] == {"layer": "logits", "op": "Gemm", "cosine_entire": 0.99701, "cosine_single": 0.9972}


def test_the_diagnosis_of_an_rknn_candidate_is_the_toolkits_own_analysis():
    from edgeopt.frameworks.rknn.runtime import RknnRuntime

    analysis = {"by": "rknn-toolkit2 accuracy_analysis", "layers": 40, "output_cosine": 0.991,
                "most_divergent": [{"layer": "/5/Conv_output_0", "op": "Conv", "cosine_entire": 0.98,
                                    "cosine_single": 0.985}]}
    entry = LineageEntry(step="rknn-int8", pass_name="rknn.convert", config={}, notes={"layer_analysis": analysis})
    artifact = ModelArtifact(path="/x/model.rknn", format="rknn", framework="rknn", precision="int8",
                             lineage=(entry,))
    found = RknnRuntime().recorded_diagnosis(artifact)
    assert found["compared_layers"] == 40 and found["layers"][0]["layer"] == "/5/Conv_output_0"
    assert found["layers"][0]["cosine"] == 0.985 and found["layers"][0]["relative_error"] is None
    assert RknnRuntime().recorded_diagnosis(artifact.model_copy(update={"lineage": ()})) is None


def test_a_job_with_a_backend_interpreter_runs_there_even_under_the_in_process_runner(tmp_path):
    from edgeopt.protocol import PassRequest
    from edgeopt.runners import Job, Limits
    from edgeopt.runners.inprocess import InProcessRunner

    marker = tmp_path / "ran-in-backend"
    wrapper = tmp_path / "backend-python"
    wrapper.write_text(f'#!/bin/sh\ntouch "{marker}"\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    request = PassRequest(adapter="edgeopt.frameworks.onnxruntime", step="s", pass_name="optimize",
                          config={"level": "basic"}, input={"path": str(tmp_path / "missing.onnx"),
                                                            "framework": "onnxruntime"},
                          output_dir=str(tmp_path / "out"))
    outcome = InProcessRunner().run_all([Job(request, str(tmp_path / "w"), Limits(60), python=str(wrapper))])[0]
    assert marker.exists()  # the child ran with the environment's interpreter
    assert outcome.status == "failed"  # and answered as a worker does: the input model is not there


def test_an_rknn_package_is_verified_with_the_rknn_environments_interpreter(tmp_path):
    import tarfile

    from edgeopt.package import ARTIFACT_JSON, host_python

    def archive(framework):
        path = tmp_path / f"{framework}.tar.gz"
        payload = json.dumps({"framework": framework}).encode()
        with tarfile.open(path, "w:gz") as tar:
            info = tarfile.TarInfo(ARTIFACT_JSON)
            info.size = len(payload)
            import io

            tar.addfile(info, io.BytesIO(payload))
        return path

    environ = {"EDGEOPT_ENV_DIR": str(tmp_path / "envs")}
    assert host_python(archive("onnxruntime"), default_registry(), environ) == sys.executable
    assert host_python(tmp_path / "nothing.tar.gz", default_registry(), environ) == sys.executable
    with pytest.raises(MissingDependency) as caught:
        host_python(archive("rknn"), default_registry(), environ)
    assert "edgeopt env create rknn" in str(caught.value)
    assert Path(sys.executable).exists()


def test_timing_on_the_board_over_ssh_leaves_rknn_out_and_says_why():
    p = plan(manifest(), load_catalog().resolve("rk3566"), load_recipes(), registry(True), load_gate_policies(),
             device="ssh://me@board")
    assert "rknn" not in p.frameworks and p.frameworks[0] == "onnxruntime"
    assert "--device times onnxruntime, openvino models" in {r.framework: r.reason for r in p.rejected}["rknn"]


def rknn_bytes(section: bytes = b"\x01" * 100, description: bytes = b'{"target_platform": ["rk3566"]}') -> bytes:
    """An .rknn laid out as rknn-toolkit2 2.5.0 writes one (the integration tests check real exports pass)."""
    import struct

    header = b"RKNN" + b"\0" * 4 + struct.pack("<QQ", 6, len(section)) + b"\0" * 40
    return header + section + struct.pack("<Q", len(description)) + description


@pytest.mark.parametrize("damage", ["truncated", "extended", "magic", "tiny"])
def test_a_truncated_or_foreign_rknn_file_is_refused(tmp_path, damage):
    from edgeopt.errors import ModelRejected
    from edgeopt.model_checks import check_rknn

    good = rknn_bytes()
    path = tmp_path / "model.rknn"
    path.write_bytes(good)
    check_rknn(path)
    damaged = {"truncated": good[:-10], "extended": good + b"\0", "magic": b"GGUF" + good[4:], "tiny": good[:20]}
    path.write_bytes(damaged[damage])
    with pytest.raises(ModelRejected):
        check_rknn(path)


def test_the_olive_requirements_pin_the_cpu_torch():
    together, no_deps = requirement_groups(requirements_text("olive"))
    assert "torch==2.13.0" in together and not no_deps  # olive-ai asks for an open torch: a CUDA build otherwise
    assert any(line.startswith("olive-ai==") for line in together) and all("==" in line for line in together)


def test_an_nvidia_target_plans_olive_workflows_first_in_the_olive_environment():
    p = plan(manifest(), load_catalog().resolve("jetson-orin-nano"), load_recipes(), registry(True),
             load_gate_policies())
    assert p.framework == "olive" and p.frameworks == ("olive", "onnxruntime")
    assert p.baseline_framework == "onnxruntime"  # Olive's outputs are ONNX models, measured by ONNX Runtime
    olive = [s for s in p.steps if s.pass_name == "olive.workflow"]
    assert [s.id for s in olive] == ["olive-peephole", "olive-int8-dynamic", "olive-fp16"]
    assert all(s.runs_in == "olive" and s.config["execution_provider"] == "CPUExecutionProvider" for s in olive)


def test_an_olive_run_config_chains_the_passes_on_one_local_system_without_search(tmp_path):
    from pydantic import ValidationError

    from edgeopt.frameworks.olive.workflow import WorkflowConfig, workflow_config

    config = WorkflowConfig(passes=[{"type": "OnnxPeepholeOptimizer"}, {"type": "OnnxDynamicQuantization"}],
                            execution_provider="CUDAExecutionProvider")
    run = workflow_config(tmp_path / "m.onnx", config, tmp_path / "olive")
    assert list(run["passes"]) == ["p0_onnxpeepholeoptimizer", "p1_onnxdynamicquantization"]
    assert run["systems"]["local"]["accelerators"] == [{"device": "gpu", "execution_providers": ["CUDAExecutionProvider"]}]
    assert run["input_model"] == {"type": "ONNXModel", "model_path": str(tmp_path / "m.onnx")}
    assert "search_strategy" not in run and run["evaluate_input_model"] is False
    with pytest.raises(ValidationError):
        WorkflowConfig(passes=[{"config": {}}])  # an Olive pass names its type
    with pytest.raises(ValidationError):
        WorkflowConfig(passes=[])


def test_the_olive_interpreter_runs_this_edgeopt_with_olives_telemetry_off(tmp_path):
    """An environment laid out as `env create` leaves it (its venv's Python stood in for by this one)."""
    import subprocess

    from edgeopt.envs import environment

    env = environment("olive", {"EDGEOPT_ENV_DIR": str(tmp_path)})
    (env.path / "venv" / "bin").mkdir(parents=True)
    (env.path / "venv" / "bin" / "python").symlink_to(sys.executable)
    (env.path / "env.json").write_text(json.dumps({"name": "olive", "python": "3.11", "requirements":
                                                   requirements_text("olive"), "packages": {}, "key": "k"}))
    assert env.status().present
    probe = "import os, edgeopt; print(os.environ['CI'], os.environ['OLIVE_DISABLE_TELEMETRY'], edgeopt.__file__)"
    shown = subprocess.run([env.python(), "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    # olive-ai 0.13.0 sends a heartbeat before reading its opt-out variable: CI=1 is what stops it first
    assert shown[:2] == ["1", "1"]
    assert Path(shown[2]).resolve().parent == Path(__file__).resolve().parents[2] / "edgeopt"  # this edgeopt's code
