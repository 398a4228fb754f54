"""A language model's calibration text (what an importance matrix is fitted on): the manifest's, or the evaluation
text after the tokens perplexity scores, so that what is scored is never what was fitted on."""

import time

import pytest

from edgeopt.builder.data import prepare_data
from edgeopt.builder.layout import OutputLayout
from edgeopt.errors import ManifestError
from edgeopt.manifest import Manifest


def llm_manifest(root, **changes) -> Manifest:
    text = root / "eval.txt"
    text.write_text("The licenses for most software are designed to take away your freedom. " * 40)
    return Manifest.model_validate({
        "name": "lm", "model": {"path": str(root), "format": "hf-transformers", "task": "causal-lm"},
        "evaluation": {"data": {"type": "text", "path": str(text)}, "metric": {"name": "perplexity"}},
        "llm": {"eval_tokens": 300}, **changes})


def test_without_calibration_data_the_evaluation_text_past_its_scored_tokens_calibrates(tmp_path):
    data = prepare_data(llm_manifest(tmp_path), OutputLayout(tmp_path / "out"))
    assert data.calibration == data.eval and data.calibration_skip_tokens == 300
    assert any("after the 300 tokens it scores" in note for note in data.notes)


def test_named_calibration_text_is_read_whole_and_keys_the_cache(tmp_path):
    other = tmp_path / "calibration.txt"
    other.write_text("A different text to calibrate on. " * 30)
    named = prepare_data(llm_manifest(tmp_path, calibration={"data": {"type": "text", "path": str(other)}}),
                         OutputLayout(tmp_path / "out"))
    assert named.calibration == other and named.calibration_skip_tokens == 0 and not named.notes
    default = prepare_data(llm_manifest(tmp_path), OutputLayout(tmp_path / "out"))
    assert named.digests["calibration"] != default.digests["calibration"]
    assert named.digests["eval"] == default.digests["eval"]


def test_calibration_data_that_is_not_text_is_refused_with_its_key(tmp_path):
    manifest = llm_manifest(tmp_path, calibration={"data": {"type": "npz", "path": str(tmp_path / "x.npz")}})
    with pytest.raises(ManifestError) as raised:
        prepare_data(manifest, OutputLayout(tmp_path / "out"))
    assert "calibration.data.type" in str(raised.value) and "text" in str(raised.value)


def test_an_importance_matrix_is_made_once_however_many_steps_ask_for_it_at_once(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from edgeopt.frameworks.gguf.imatrix import computed_once

    made = []

    def make(path):
        made.append(path)
        time.sleep(0.2)  # long enough that the other steps ask while the first is still making it
        path.write_bytes(b"matrix")

    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(lambda _: computed_once(tmp_path, "k1", make), range(3)))
    assert len(made) == 1
    assert {path for path, _ in answers} == {tmp_path / "imatrix-k1.gguf"}
    assert sorted(reused for _, reused in answers) == [False, True, True]
    assert computed_once(tmp_path, "k2", make) == (tmp_path / "imatrix-k2.gguf", False)  # another key: its own
    assert len(made) == 2


def test_a_matrix_that_failed_to_be_made_leaves_nothing_and_the_next_step_makes_it(tmp_path):
    from edgeopt.frameworks.gguf.imatrix import computed_once

    def fail(path):
        path.write_bytes(b"half")
        raise RuntimeError("llama-imatrix exited with 1")

    with pytest.raises(RuntimeError):
        computed_once(tmp_path, "k", fail)
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".gguf"]
    path, reused = computed_once(tmp_path, "k", lambda p: p.write_bytes(b"whole"))
    assert not reused and path.read_bytes() == b"whole"
