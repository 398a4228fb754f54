"""Hugging Face folder → GGUF (F16/F32): with llama.cpp's own converter where it is set up and supports the
model, else with edgeopt's writer (gguf-py's writer and tensor-name maps). Both write the tokenizer metadata
llama.cpp reads to tokenize on the device: the pre-tokenizer identified from the tokenizer itself, add-BOS as
the tokenizer adds it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
    # auto: llama.cpp's converter when `edgeopt env create llama.cpp` made it and it takes the model, else
    # edgeopt's writer (the lineage notes say which ran, and why not the other)
    converter: Literal["auto", "llama.cpp", "edgeopt"] = "auto"


class ConvertHf(Pass):
    name = "convert_hf"
    Config = ConvertHfConfig
    cost = 2
    summary = ("Hugging Face folder → GGUF with llama.cpp's own converter, or edgeopt's writer "
               "(Llama/Qwen2/SmolLM/Mistral) where it is not set up or refuses the model")

    @classmethod
    def environments(cls, config: ConvertHfConfig) -> tuple[str, ...]:
        return () if config.converter == "edgeopt" else ("llama.cpp",)

    def apply(self, config: ConvertHfConfig, artifact, context: PassContext) -> ModelArtifact:
        source = Path(context.source_path)
        out = fresh_dir(context.output_dir) / MODEL_FILE
        notes = convert(source, out, config.outtype, config.converter)
        return gguf_artifact(None, out, context, f"gguf.{self.name}", config, config.outtype, notes)


def convert(folder: Path, out: Path, outtype: str, converter: str) -> dict:
    """The GGUF of `folder` at `out`, by the converter asked for; notes say which ran and why not the other."""
    why_not = None
    if converter != "edgeopt":
        from edgeopt.envs import LLAMA_CPP, environment

        env = environment(LLAMA_CPP, os.environ)
        status = env.status()
        if status.present:
            refused = run_llama_cpp_converter(env.converter(), folder, out, outtype)
            if refused is None:
                return {"converter": f"llama.cpp's {status.detail}", **describe(out)}
            why_not = f"llama.cpp's converter refused it: {refused}"
        else:
            why_not = f"llama.cpp's converter is not set up ({status.detail})"
        if converter == "llama.cpp":
            raise ValueError(why_not)
    notes = write_gguf(folder, out, outtype)
    return {"converter": "edgeopt's GGUF writer", **({"why_not_llama_cpp": why_not} if why_not else {}), **notes}


def run_llama_cpp_converter(script: Path, folder: Path, out: Path, outtype: str) -> str | None:
    """Runs llama.cpp's converter with this interpreter; None when it wrote `out`, else the reason it gave."""
    completed = subprocess.run([sys.executable, str(script), str(folder), "--outfile", str(out), "--outtype", outtype],
                               capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if completed.returncode == 0 and out.is_file():
        return None
    out.unlink(missing_ok=True)
    lines = [line for line in completed.stderr.splitlines() if "Error" in line or "error" in line]
    return (lines[-1] if lines else (completed.stderr.strip().splitlines() or ["no output"])[-1])[:500]


def describe(path: Path) -> dict:
    """What a GGUF file says of itself that a device depends on: its architecture and tokenizer metadata."""
    reader = gguf_py().GGUFReader(str(path))

    def field(key: str):
        return reader.fields[key].contents() if key in reader.fields else None

    return {"architecture": field("general.architecture"), "tensors": len(reader.tensors),
            "tokenizer_pre": field("tokenizer.ggml.pre"), "add_bos": field("tokenizer.ggml.add_bos_token"),
            "eos_token_id": field("tokenizer.ggml.eos_token_id")}


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
            "tied_embeddings": "lm_head.weight" not in tensors, **{k: v for k, v in describe(out).items()
                                                                   if k.startswith(("tokenizer", "add_", "eos"))}}


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
    writer.add_tokenizer_pre(pre_tokenizer_name(tokenizer))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special_vocab = gguf.SpecialVocab(folder, load_merges=True, n_vocab=size)
    template = folder / "chat_template.jinja"  # where newer transformers keep it, outside tokenizer_config.json
    if special_vocab.chat_template is None and template.exists():
        special_vocab.chat_template = template.read_text()
    special_vocab.add_to_gguf(writer)
    return size


# llama.cpp names the regex its tokenizer splits text with before BPE ("tokenizer.ggml.pre"); its converter
# finds the name by hashing how the tokenizer encodes a test text. edgeopt's writer reads it from the
# tokenizer's own pre_tokenizer, for the families whose split it knows (llama.cpp's llama-vocab.cpp regexes):
_BYTE_LEVEL = ("ByteLevel",)
_PRE_TOKENIZERS = {
    _BYTE_LEVEL: "gpt-2",  # GPT-2's regex inside ByteLevel(use_regex=true)
    (("Digits", True), *_BYTE_LEVEL): "smollm",  # single digits, then GPT-2's regex
}
_SPLIT_REGEXES = {  # Split(Regex) then ByteLevel(use_regex=false)
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+":
        "llama-bpe",
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+":
        "qwen2",
}


def pre_tokenizer_name(tokenizer: dict) -> str:
    """llama.cpp's name for the tokenizer's pre-tokenizer; a ValueError for one edgeopt's writer does not know
    (writing "default" would make llama.cpp split text differently from the model's own tokenizer)."""
    pre = tokenizer.get("pre_tokenizer") or {}
    parts = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    shape = []
    for part in parts:
        kind = part.get("type")
        if kind == "ByteLevel" and part.get("use_regex", True):
            shape.append("ByteLevel")
        elif kind == "Digits":
            shape.append(("Digits", bool(part.get("individual_digits"))))
        elif kind == "Split" and "Regex" in (part.get("pattern") or {}):
            shape.append(("Split", part["pattern"]["Regex"]))
        elif kind == "ByteLevel":
            shape.append(("ByteLevel", "no-regex"))
        else:
            shape.append(kind)
    shape = tuple(shape)
    if shape in _PRE_TOKENIZERS:
        return _PRE_TOKENIZERS[shape]
    if len(shape) == 2 and shape[1] == ("ByteLevel", "no-regex") and shape[0][0] == "Split" \
            and shape[0][1] in _SPLIT_REGEXES:
        return _SPLIT_REGEXES[shape[0][1]]
    raise ValueError(f"edgeopt's GGUF writer does not know this tokenizer's pre-tokenizer ({pre.get('type')}: "
                     f"{[p.get('type') for p in parts]}); llama.cpp's converter identifies more "
                     f"(`edgeopt env create llama.cpp`)")
