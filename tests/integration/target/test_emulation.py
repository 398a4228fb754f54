"""The target's runtime build under aarch64 emulation: kernels chosen by the emulated core, instructions
counted per inference, outputs compared with the host's; and the environment's own command."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from edgeopt.errors import ExitStatus

pytestmark = [pytest.mark.onnxruntime, pytest.mark.emulation]
onnxruntime = pytest.importorskip("onnxruntime")

IN, HIDDEN, OUT, BATCH = 256, 1024, 1024, 64
MACS = BATCH * (IN * HIDDEN + HIDDEN * OUT)


def mlp(folder: Path) -> tuple[Path, Path, Path]:
    """A real fp32 MLP, its dynamic-int8 twin (ONNX Runtime's quantizer) and a batch of inputs."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import quantize_dynamic

    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.normal(scale=0.1, size=(IN, HIDDEN)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.normal(scale=0.1, size=(HIDDEN, OUT)).astype(np.float32), "w2")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("MatMul", ["r", "w2"], ["y"])], "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", IN])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", OUT])], [w1, w2])
    fp32, int8 = folder / "fp32.onnx", folder / "int8.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(fp32))
    quantize_dynamic(str(fp32), str(int8), op_types_to_quantize=["MatMul"])
    x = rng.normal(size=(BATCH, IN)).astype(np.float32)
    np.savez(folder / "data.npz", x=x, __labels__=np.zeros(BATCH, dtype=np.int64))
    return fp32, int8, folder / "data.npz"


def counted(env, core_name: str, model: Path, data: Path, work: Path):
    """The emulate operation on one model, as the target core, with the instruction counter attached."""
    from edgeopt.artifact import ModelArtifact
    from edgeopt.estimate.cores import load_cores
    from edgeopt.estimate.counts import plugin_arguments, read_counts
    from edgeopt.estimate.marks import FIRST_MARK
    from edgeopt.protocol import EmulateRequest, EmulateResult
    from edgeopt.runners import Job, Limits
    from edgeopt.runners.child import run_child

    core = load_cores()[core_name]
    work.mkdir(parents=True)
    request = EmulateRequest(adapter="edgeopt.frameworks.onnxruntime", eval_data=str(data), timing_data=str(data),
                             artifact=ModelArtifact(path=str(model), framework="onnxruntime"), batch_size=BATCH,
                             save_outputs=str(work / "outputs.npy"))
    log = work / "plugin.log"
    job = Job(request, str(work), Limits(timeout_s=600, stall_s=120),
              environment=(("EDGEOPT_QEMU_ARGS", plugin_arguments(env.plugin(), log, FIRST_MARK)),))
    outcome = run_child(job, {"PATH": os.environ["PATH"]}, python=env.python(core))
    assert outcome.ok, outcome.detail
    result = EmulateResult.model_validate(outcome.result)
    assert result.machine == "aarch64"
    return read_counts(log, result.first_mark), np.load(work / "outputs.npy")


def test_dotprod_int8_runs_a_quarter_of_the_fp32_instructions_and_the_a53_another_kernel(aarch64_env, tmp_path):
    fp32, int8, data = mlp(tmp_path)
    a55_fp32, out_fp32 = counted(aarch64_env, "cortex-a55", fp32, data, tmp_path / "a55-fp32")
    a55_int8, out_int8 = counted(aarch64_env, "cortex-a55", int8, data, tmp_path / "a55-int8")
    a53_int8, out_a53 = counted(aarch64_env, "cortex-a53", int8, data, tmp_path / "a53-int8")
    # fp32: one 4-lane FMLA per 4 multiply-accumulates
    assert a55_fp32.classes["of_which_fmla_vec"] == pytest.approx(MACS / 4, rel=0.01)
    # int8 with dotprod: one SDOT does 16 multiply-accumulates, so a quarter of the fp32 kernel's instructions
    assert a55_int8.classes["of_which_sdot_udot"] == pytest.approx(MACS / 16, rel=0.01)
    assert a55_int8.classes["of_which_sdot_udot"] == pytest.approx(a55_fp32.classes["of_which_fmla_vec"] / 4, rel=0.01)
    assert a55_int8.instructions < 0.45 * a55_fp32.instructions  # quantizing the activations costs a little
    # the A53 has no dotprod: ONNX Runtime runs another kernel, with more instructions, and the same outputs
    assert a53_int8.classes["of_which_sdot_udot"] == 0
    assert a53_int8.instructions > 1.5 * a55_int8.instructions
    np.testing.assert_allclose(out_a53, out_int8, rtol=1e-5, atol=1e-5)
    host = onnxruntime.InferenceSession(str(fp32), providers=["CPUExecutionProvider"])
    x = np.load(data)["x"]
    np.testing.assert_allclose(out_fp32, host.run(None, {"x": x})[0], rtol=1e-4, atol=1e-4)
    assert a55_fp32.blocks and a55_fp32.coverage > 0.9  # the hot blocks llvm-mca models


def test_a_missing_environment_is_exit_4_with_the_command(cli, mlp_project, tmp_path):
    result = cli("build", str(mlp_project()), "--target", "rk3566", "--out", str(tmp_path / "out"),
                 environ={"EDGEOPT_ENV_DIR": str(tmp_path / "no-envs")})
    assert result.status == ExitStatus.ENVIRONMENT
    assert "edgeopt env create aarch64" in result.stderr and "Traceback" not in result.stderr
    listed = cli("env", "list", environ={"EDGEOPT_ENV_DIR": str(tmp_path / "no-envs")})
    assert listed.status == ExitStatus.OK and "aarch64: missing" in listed.stdout


@pytest.mark.slow  # ~4 min: every model emulated and counted (~35 s each on 2 Zen 1 cores)
def test_a_build_for_an_arm_board_decides_on_the_boards_figures(cli, mlp_project, tmp_path, aarch64_env):
    # a float, two int8 and two thread counts (fp32-opt comes along: the quantizers read its model)
    only = ["fp32-opt-ext", "int8-dynamic", "int8-static", "tuned-iot1-emaon", "tuned-iot4-emaon"]
    manifest = mlp_project(search={"frameworks": ["onnxruntime"], "only": only})
    result = cli("build", str(manifest), "--target", "rk3566", "--out", str(tmp_path / "out"), "--quiet")
    assert result.status in (ExitStatus.OK, ExitStatus.GATES_FAILED), result.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["plan"]["target_evaluation"]["emulation"]["core"] == "cortex-a55"
    measured = [c for c in [report["baseline"], *report["candidates"]] if c["status"] == "ok"]
    assert len(measured) >= 6
    for c in measured:
        target = c["metrics"]["target"]
        assert target["latency_ms"]["provenance"] == "estimated" and target["latency_ms"]["value"] > 0
        assert target["accuracy"]["provenance"] == "simulated" and target["instructions"] > 0
        assert target["emulated"]["agreement"]["samples"] == 16
        if c["id"] != "baseline":
            gates = c["gates"]
            assert gates["speedup"]["provenance"] == "estimated" and gates["accuracy_retained"]["provenance"] == "simulated"
            assert gates["memory_cut"]["provenance"] == "measured-host"
            assert gates["speedup"]["value"] == pytest.approx(c["target_ratios"]["speedup"])
    by_id = {c["id"]: c for c in measured}
    # the fp32 candidates' outputs are the host's; static int8 kernels are not bit-exact across architectures
    assert by_id["fp32-opt-ext"]["metrics"]["target"]["outputs_differ"] is False
    # more threads on the board: the 4-thread candidate is estimated faster than the 1-thread one
    four = [c for c in measured if c["id"].startswith("tuned-iot4")]
    one = [c for c in measured if c["id"].startswith("tuned-iot1")]
    assert four and one and four[0]["metrics"]["target"]["latency_ms"]["value"] < one[0]["metrics"]["target"]["latency_ms"]["value"]
    assert "each gate says which figure it read" in report["provenance"]["statement"]


def test_a_package_verifies_on_the_arm_runtime_build(cli, mlp_project, tmp_path, aarch64_env):
    lenient = {"accuracy_retained": 0.5, "speedup": 0.01, "memory_cut": -10.0}
    manifest = mlp_project(gates=lenient, search={"frameworks": ["onnxruntime"], "max_candidates": 2},
                           measure={"emulated_samples": 4, "rounds": 2})
    built = cli("build", str(manifest), "--target", "rk3566", "--out", str(tmp_path / "out"), "--quiet", "--package")
    assert built.status == ExitStatus.OK, built.stderr
    archive = next((tmp_path / "out" / "package").glob("*.tar.gz"))
    verified = cli("verify", str(archive), "--arch", "aarch64")
    assert verified.status == ExitStatus.OK, verified.stderr
    assert "python-cortex-a55" in verified.stdout and "logits: shape [1, 10]" in verified.stdout
