"""Hugging Face folder → GGUF (F16/F32), written with gguf-py's writer and tensor-name maps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np

from edgeopt.artifact import ModelArtifact
from edgeopt.frameworks.common import fresh_dir
from edgeopt.frameworks.gguf.runtime import MODEL_FILE, gguf_artifact, gguf_py
from edgeopt.passes import Pass, PassConfig, PassContext

_ARCHITECTURES = {  # Hugging Face class → (gguf arch, whether Q/K weights need llama.cpp's rotary layout)
    "LlamaForCausalLM": ("LLAMA", True),
    "MistralForCausalLM": ("LLAMA", True),
    "Qwen2ForCausalLM": ("QWEN2", False),
}


class ConvertHfConfig(PassConfig):
    outtype: Literal["f16", "f32"] = "f16"


class ConvertHf(Pass):
    name = "convert_hf"
    Config = ConvertHfConfig
    cost = 2
    summary = "Hugging Face folder (Llama/Qwen2/SmolLM/Mistral) → GGUF, tokenizer and chat template kept"

    def apply(self, config: ConvertHfConfig, artifact, context: PassContext) -> ModelArtifact:
        source = Path(context.source_path)
        out = fresh_dir(context.output_dir) / MODEL_FILE
        notes = write_gguf(source, out, config.outtype)
        return gguf_artifact(None, out, context, f"gguf.{self.name}", config, config.outtype, notes)


def write_gguf(folder: Path, out: Path, outtype: str) -> dict:
    gguf = gguf_py()
    from safetensors.numpy import load_file

    hf = json.loads((folder / "config.json").read_text())
    architecture = (hf.get("architectures") or ["?"])[0]
    if architecture not in _ARCHITECTURES:
        raise ValueError(f"{architecture} is not supported by edgeopt's GGUF writer "
                         f"(supported: {', '.join(_ARCHITECTURES)})")
    arch_name, permute = _ARCHITECTURES[architecture]
    arch = getattr(gguf.MODEL_ARCH, arch_name)
    blocks, heads = hf["num_hidden_layers"], hf["num_attention_heads"]
    kv_heads = hf.get("num_key_value_heads", heads)
    hidden = hf["hidden_size"]
    writer = gguf.GGUFWriter(str(out), gguf.MODEL_ARCH_NAMES[arch])
    writer.add_name(folder.name)
    writer.add_context_length(hf.get("max_position_embeddings", 2048))
    writer.add_embedding_length(hidden)
    writer.add_block_count(blocks)
    writer.add_feed_forward_length(hf["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_dimension_count(hf.get("head_dim", hidden // heads))
    writer.add_rope_freq_base(float(hf.get("rope_theta", 10000.0)))
    writer.add_layer_norm_rms_eps(float(hf.get("rms_norm_eps", 1e-5)))
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if outtype == "f16" else gguf.LlamaFileType.ALL_F32)
    vocab_size = _add_vocab(writer, folder, hf, gguf)

    names = gguf.get_tensor_name_map(arch, blocks)
    tensors = {}
    for shard in sorted(folder.glob("*.safetensors")):
        tensors.update(load_file(str(shard)))
    if not tensors:
        raise ValueError(f"{folder} has no .safetensors weights")
    written, skipped = 0, []
    for hf_name, array in tensors.items():
        if hf_name.endswith("rotary_emb.inv_freq"):
            continue  # recomputed by llama.cpp from rope_freq_base
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            skipped.append(hf_name)
            continue
        array = np.asarray(array, dtype=np.float32)
        if permute and hf_name.endswith("q_proj.weight"):
            array = _rotary_layout(array, heads, heads)
        elif permute and hf_name.endswith("k_proj.weight"):
            array = _rotary_layout(array, heads, kv_heads)
        # norms and biases (1-D) stay f32, as llama.cpp's converter keeps them
        if outtype == "f16" and array.ndim >= 2:
            array = array.astype(np.float16)
        writer.add_tensor(name, array)
        written += 1
    if skipped:
        raise ValueError(f"tensors with no GGUF name for {arch_name}: {', '.join(skipped[:5])}")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return {"architecture": architecture, "tensors": written, "vocab_size": vocab_size,
            "tied_embeddings": "lm_head.weight" not in tensors}


def _rotary_layout(weights: np.ndarray, heads: int, kv_heads: int) -> np.ndarray:
    """Hugging Face stores Q/K rows for rotate-half rotary embeddings; llama.cpp's llama graph expects
    the interleaved pairs of the original Llama checkpoints."""
    if kv_heads != heads:
        heads = kv_heads
    return (weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def _add_vocab(writer, folder: Path, hf: dict, gguf) -> int:
    """A byte-level BPE vocabulary from tokenizer.json, special tokens, merges and the chat template."""
    tokenizer = json.loads((folder / "tokenizer.json").read_text())
    model = tokenizer["model"]
    if model.get("type") != "BPE":
        raise ValueError(f"only BPE tokenizers are written to GGUF here, not {model.get('type')}")
    vocab = dict(model["vocab"])
    special = set()
    for added in tokenizer.get("added_tokens", []):
        vocab[added["content"]] = added["id"]
        if added.get("special"):
            special.add(added["id"])
    size = max(hf.get("vocab_size", 0), max(vocab.values()) + 1)
    tokens = [f"[PAD{i}]" for i in range(size)]
    types = [gguf.TokenType.UNUSED] * size
    for text, index in vocab.items():
        tokens[index] = text
        types[index] = gguf.TokenType.CONTROL if index in special else gguf.TokenType.NORMAL
    writer.add_tokenizer_model("gpt2")
    # the pre-tokenizer regex family; "smollm" for SmolLM's, llama.cpp's default for anything else
    name = str(hf.get("_name_or_path", "")) + folder.name
    writer.add_tokenizer_pre("smollm" if "smollm" in name.lower() else "default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special_vocab = gguf.SpecialVocab(folder, load_merges=True, n_vocab=size)
    template = folder / "chat_template.jinja"  # where newer transformers keep it, outside tokenizer_config.json
    if special_vocab.chat_template is None and template.exists():
        special_vocab.chat_template = template.read_text()
    special_vocab.add_to_gguf(writer)
    return size
