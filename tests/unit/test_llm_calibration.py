"""A language model's calibration text (what an importance matrix is fitted on): the manifest's, or the evaluation
text after the tokens perplexity scores, so that what is scored is never what was fitted on."""

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
