"""A Hugging Face model whose architecture optimum's exporter does not know is exported by torch's dynamo
exporter instead, and the lineage says why (the optimum path is the MiniLM example's)."""

import json
from pathlib import Path

import pytest
import yaml

from edgeopt.errors import ExitStatus

pytestmark = [pytest.mark.onnxruntime, pytest.mark.hf]
TEXT = Path("/usr/share/common-licenses/GPL-3")


def tiny_ernie(folder: Path) -> None:
    """A one-layer ERNIE with random weights and a word-level tokenizer trained here on real text: an
    architecture transformers runs and optimum-onnx 0.1.0 has no ONNX configuration for."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import AutoConfig, AutoModel, PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train([str(TEXT)], trainers.WordLevelTrainer(vocab_size=400, special_tokens=["[PAD]", "[UNK]", "[CLS]"]))
    tokenizer.post_processor = processors.TemplateProcessing(single="[CLS] $A", special_tokens=[("[CLS]", 2)])
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="[PAD]", unk_token="[UNK]").save_pretrained(folder)
    config = AutoConfig.for_model("ernie", vocab_size=tokenizer.get_vocab_size(), hidden_size=32, num_hidden_layers=1,
                                  num_attention_heads=2, intermediate_size=64, max_position_embeddings=160)
    AutoModel.from_config(config).eval().save_pretrained(folder, safe_serialization=True)


def test_an_architecture_optimum_does_not_know_is_exported_by_dynamo_and_says_why(cli, tmp_path):
    pytest.importorskip("transformers")
    pytest.importorskip("optimum.exporters.onnx")
    tiny_ernie(tmp_path / "model")
    manifest = {"name": "ernie", "model": {"path": "model", "format": "hf-transformers", "task": "embedding"},
                "evaluation": {"data": {"type": "text", "path": str(TEXT), "limit": 8, "min_chars": 40},
                               "metric": {"name": "fidelity", "output": "last_hidden_state"}, "batch_size": 1},
                "measure": {"warmup_runs": 2, "min_runs": 5, "max_runs": 50, "time_budget_s": 0.2},
                "gates": {"accuracy_retained": 0.5, "speedup": 0.01, "memory_cut": -10.0},
                "search": {"frameworks": ["onnxruntime"], "max_candidates": 1}}
    (tmp_path / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    out = tmp_path / "out"
    result = cli("build", str(tmp_path / "manifest.yaml"), "--out", str(out), "--quiet")
    assert result.status in (ExitStatus.OK, ExitStatus.GATES_FAILED), result.stderr
    report = json.loads((out / "report.json").read_text())
    baseline = report["baseline"]
    assert baseline["status"] == "ok", baseline["error"]
    notes = baseline["lineage"][0]["notes"]
    assert notes["exporter"].startswith("torch") and "dynamo" in notes["exporter"], notes
    assert "optimum's exporter failed" in notes["why_not_optimum"] and "ernie" in notes["why_not_optimum"]
    assert notes["max_abs_error_vs_torch"] < 1e-3
