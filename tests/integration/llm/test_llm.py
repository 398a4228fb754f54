"""Language models: GGUF with the real llama.cpp (llama-cpp-python, gguf-py) and MLX on its CPU backend."""

import json
import os
from pathlib import Path

import pytest

from edgeopt.errors import ExitStatus


def report_of(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


def _llama_cpp_converter_ready() -> bool:
    """Whether `edgeopt env create llama.cpp` has run; `make test` runs it, so under CI's settings it must."""
    from edgeopt.envs import LLAMA_CPP, environment

    status = environment(LLAMA_CPP, os.environ).status()
    if not status.present and os.environ.get("EDGEOPT_REQUIRE_TOOLS") == "1":
        pytest.fail(f"llama.cpp's converter is required here: {status.detail}")
    return status.present


@pytest.mark.gguf
@pytest.mark.hf
@pytest.mark.slow
def test_llama_cpp_converter_and_edgeopt_writer_agree_on_smollm2(smollm2_folder, tmp_path):
    """The real SmolLM2 folder through both converters: the same tokenizer metadata (pre-tokenizer `smollm`,
    no BOS, EOS <|im_end|>), the same tokens as the Hugging Face tokenizer for real text, the same logits."""
    pytest.importorskip("llama_cpp")
    if not _llama_cpp_converter_ready():
        pytest.skip("llama.cpp's converter is not set up (edgeopt env create llama.cpp)")
    import numpy as np
    from llama_cpp import Llama
    from transformers import AutoTokenizer

    from edgeopt.frameworks.gguf.convert import convert

    notes, logits = {}, {}
    text = Path("/usr/share/common-licenses/GPL-3").read_text()[:2000]
    expected = AutoTokenizer.from_pretrained(smollm2_folder)(text)["input_ids"][:96]
    for converter in ("llama.cpp", "edgeopt"):
        path = tmp_path / f"{converter}.gguf"
        notes[converter] = convert(smollm2_folder, path, "f16", converter)
        model = Llama(str(path), n_ctx=128, logits_all=True, verbose=False, n_threads=2)
        tokens = model.tokenize(text.encode(), add_bos=notes[converter]["add_bos"], special=False)[:96]
        assert tokens == expected, converter
        model.eval(tokens)
        logits[converter] = np.array(model.scores[:len(tokens)])
        del model
    assert notes["llama.cpp"]["converter"].startswith("llama.cpp's convert_hf_to_gguf.py")
    for key in ("tokenizer_pre", "add_bos", "eos_token_id"):
        assert notes["llama.cpp"][key] == notes["edgeopt"][key], key
    assert (notes["edgeopt"]["tokenizer_pre"], notes["edgeopt"]["add_bos"], notes["edgeopt"]["eos_token_id"]) == (
        "smollm", False, 2)
    np.testing.assert_allclose(logits["edgeopt"], logits["llama.cpp"], atol=1e-3)


@pytest.mark.gguf
def test_gguf_build_writes_f16_quantizes_and_measures_perplexity_and_speed(cli, llm_manifest, tmp_path):
    pytest.importorskip("llama_cpp")
    pytest.importorskip("gguf")
    out = tmp_path / "out"
    result = cli("build", str(llm_manifest()), "--target", "rk3566", "--out", str(out), "--quiet")
    assert result.status in (ExitStatus.OK, ExitStatus.GATES_FAILED), result.stderr
    report = report_of(out)
    assert report["plan"]["frameworks"] == ["gguf"] and report["provenance"]["label"] == "measured-host"
    baseline = report["baseline"]
    assert baseline["status"] == "ok", baseline["error"]
    assert baseline["precision"] == "f16" and baseline["lineage"][0]["pass_name"] == "gguf.convert_hf"
    # a tokenizer trained here is one llama.cpp's converter cannot identify: edgeopt's writer takes over, says
    # why, and names the pre-tokenizer from the tokenizer's own ByteLevel split
    converted = baseline["lineage"][0]["notes"]
    assert converted["converter"] == "edgeopt's GGUF writer" and converted["tokenizer_pre"] == "gpt-2"
    if _llama_cpp_converter_ready():
        assert "refused" in converted["why_not_llama_cpp"]
    ppl = baseline["metrics"]["accuracy"]["perplexity"]
    assert 1 < ppl < 5000  # random weights over a 512-token vocabulary: near the vocabulary size, finite
    by_id = {c["id"]: c for c in report["candidates"]}
    for step in ("gguf-q8_0", "gguf-q5_k_m", "gguf-q4_k_m"):
        c = by_id[step]
        assert c["status"] == "ok", c["error"]
        m = c["metrics"]
        assert m["accuracy"]["tokens_scored"] > 100 and m["llm"]["generation_tokens_per_s"] > 0
        assert m["llm"]["ttft_ms"] > 0 and m["peak_rss_mb"] > 0
        assert m["size_mb"] < baseline["metrics"]["size_mb"]
    # 64-wide rows cannot take K-quants (256 per block): every such tensor falls back, and says so
    k_quant = by_id["gguf-q4_k_m"]["lineage"][-1]["notes"]
    assert k_quant["fallbacks"] > 0 and k_quant["fallback_tensors"][0]["row"] % 256 != 0
    assert by_id["gguf-q8_0"]["lineage"][-1]["notes"]["fallbacks"] == 0
    assert report["gate_policy"]["name"] == "llm"
    _check_importance_matrix(by_id)


def _llama_cpp_tools_ready() -> bool:
    from edgeopt.envs import LLAMA_CPP, environment

    ready = (environment(LLAMA_CPP, os.environ).path / "bin" / "llama-imatrix").is_file()
    if not ready and os.environ.get("EDGEOPT_REQUIRE_TOOLS") == "1":
        pytest.fail("llama.cpp's tools are required here (edgeopt env create llama.cpp)")
    return ready


def _check_importance_matrix(by_id: dict) -> None:
    """The imatrix steps: fitted on the evaluation text past the 256 tokens perplexity scores, and the matrix changes
    the file (a Q4_0 with it is not byte for byte the plain Q4_0)."""
    steps = ("gguf-q4_k_m-imatrix", "gguf-q4_0-imatrix", "gguf-iq4_nl-imatrix", "gguf-iq4_nl-imatrix-mixed")
    if not _llama_cpp_tools_ready():
        for step in steps:  # the candidate fails with the command that builds the tools; the build goes on
            assert by_id[step]["status"] == "failed" and "edgeopt env create llama.cpp" in by_id[step]["error"]
        return
    for step in steps:
        c = by_id[step]
        assert c["status"] == "ok", c["error"]
        fitted = c["lineage"][-1]["notes"]["imatrix"]
        assert fitted["skipped_tokens"] == 256 and fitted["calibration_tokens"] >= 2 * fitted["context"]
        assert c["metrics"]["accuracy"]["perplexity"] > 1
    # one matrix for the four file types: whichever step came first made it, the others read it
    made = [step for step in steps if not by_id[step]["lineage"][-1]["notes"]["imatrix"]["imatrix_reused"]]
    assert len(made) == 1 and by_id[made[0]]["lineage"][-1]["notes"]["imatrix"]["imatrix_seconds"] > 0
    assert by_id["gguf-iq4_nl-imatrix"]["lineage"][-1]["notes"]["tensor_types"].get("IQ4_NL", 0) > 0
    import numpy as np
    from gguf import GGUFReader

    plain, weighted = (GGUFReader(by_id[step]["model_path"]) for step in ("gguf-q4_0", "gguf-q4_0-imatrix"))
    assert "quantize.imatrix.entries_count" in weighted.fields and "quantize.imatrix.entries_count" not in plain.fields
    before = {t.name: t for t in plain.tensors if t.tensor_type.name == "Q4_0"}
    changed = [t.name for t in weighted.tensors if t.name in before and t.tensor_type.name == "Q4_0"
               and not np.array_equal(t.data, before[t.name].data)]
    assert changed, "the importance matrix changed no Q4_0 weight"
    # the mixed file: FFN down and attention V in Q8_0 as its recipe asks, every other layer weight IQ4_NL
    mixed = by_id["gguf-iq4_nl-imatrix-mixed"]
    kinds = {t.name: t.tensor_type.name for t in GGUFReader(mixed["model_path"]).tensors if t.name.startswith("blk.")
             and t.name.endswith(".weight") and len(t.shape) == 2}
    kept = {name: kind for name, kind in kinds.items() if ".ffn_down." in name or ".attn_v." in name}
    assert kept and set(kept.values()) == {"Q8_0"}
    assert {kind for name, kind in kinds.items() if name not in kept} == {"IQ4_NL"}
    assert mixed["lineage"][-1]["notes"]["fallbacks"] == 0


@pytest.mark.gguf
def test_a_gguf_package_keeps_the_tokenizer_and_runs(cli, llm_manifest, tmp_path):
    pytest.importorskip("llama_cpp")
    out = tmp_path / "out"
    cli("build", str(llm_manifest(search={"max_candidates": 1})), "--target", "rk3566", "--out", str(out), "--quiet")
    packaged = cli("package", str(out), "--candidate", "gguf-q8_0")
    assert packaged.status == ExitStatus.OK, packaged.stderr
    verified = cli("verify", packaged.stdout.strip())
    assert verified.status == ExitStatus.OK, verified.stderr
    assert "generated" in verified.stdout
    import tarfile

    with tarfile.open(packaged.stdout.strip()) as tar:
        descriptor = json.load(tar.extractfile("edgeopt-artifact.json"))
    assert descriptor["io"]["tokenizer"] == "gpt2" and descriptor["io"]["architecture"] == "llama"


@pytest.mark.mlx
def test_mlx_build_for_apple_is_measured_on_the_cpu_backend_and_says_so(cli, llm_manifest, tmp_path):
    pytest.importorskip("mlx_lm")
    out = tmp_path / "out"
    # groups of 64 divide every layer, groups of 128 do not (~45 s a model here: mlx-q-b8-gs64 and -gs32 not run)
    manifest = llm_manifest(search={"frameworks": ["mlx"], "only": ["mlx-q-b4-gs64", "mlx-q4-gs-gs128"]})
    result = cli("build", str(manifest), "--target", "apple-m2", "--out", str(out), "--quiet")
    assert result.status in (ExitStatus.OK, ExitStatus.GATES_FAILED), result.stderr
    report = report_of(out)
    assert report["provenance"]["label"] == "measured-host"
    assert any("CPU backend" in note for note in report["notes"])
    assert report["baseline"]["status"] == "ok" and report["baseline"]["framework"] == "mlx"
    assert "cpu" in report["baseline"]["metrics"]["versions"]["mlx_device"].lower()
    by_id = {c["id"]: c for c in report["candidates"]}
    c = by_id["mlx-q-b4-gs64"]
    assert c["status"] == "ok", c["error"]
    assert c["metrics"]["accuracy"]["perplexity"] > 1 and c["metrics"]["llm"]["generation_tokens_per_s"] > 0
    assert c["lineage"][-1]["notes"]["unquantized_layers"] == 0
    # the 64-wide layers cannot be split into groups of 128: left in float, and reported
    coarse = by_id["mlx-q4-gs-gs128"]["lineage"][-1]["notes"]
    assert coarse["unquantized_layers"] > 0 and coarse["unquantized"]


def test_a_causal_lm_manifest_must_use_perplexity_on_text(cli, llm_manifest):
    bad = llm_manifest(evaluation={"data": {"type": "text", "path": "/usr/share/common-licenses/GPL-3"},
                                   "metric": {"name": "top1"}})
    result = cli("plan", str(bad), "--target", "rk3566")
    assert result.status == ExitStatus.USAGE and "perplexity" in result.stderr


def test_the_planner_sends_llms_to_gguf_on_arm_and_mlx_then_gguf_on_apple(cli, llm_manifest):
    arm = json.loads(cli("plan", str(llm_manifest()), "--target", "rk3566", "--json").stdout)
    assert arm["framework"] == "gguf" and arm["baseline"] == "gguf-f16"
    apple = json.loads(cli("plan", str(llm_manifest()), "--target", "apple-m2", "--json").stdout)
    installed = apple["frameworks"]
    if installed == ["mlx", "gguf"]:
        ids = {s["id"]: s for s in apple["steps"]}
        assert apple["baseline"] == "mlx-f16" and ids["gguf-f16"]["role"] == "candidate"
        assert ids["gguf-q4_k_m"]["input"] == "gguf-f16"
