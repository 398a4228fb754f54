"""llama.cpp (GGUF): Hugging Face folder → GGUF (F16/F32) written with gguf-py, quantization with
llama.cpp's own quantizer, and measurement with llama.cpp (perplexity from its logits, tokens/s)."""

from __future__ import annotations

import ctypes
import json
import os
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from edgeopt.artifact import ModelArtifact
from edgeopt.frameworks.common import files_beside, fresh_dir, lineage_entry, probe_distribution, with_runtime_settings
from edgeopt.passes import Pass, PassConfig, PassContext

INSTALL = "pip install 'edgeopt[gguf]'"
MODEL_FILE = "model.gguf"


def _gguf():
    from edgeopt.errors import MissingDependency

    try:
        import gguf
    except ImportError:
        raise MissingDependency("gguf (gguf-py)", INSTALL) from None
    return gguf


def _llama_cpp():
    from edgeopt.errors import MissingDependency

    try:
        import llama_cpp
    except ImportError:
        raise MissingDependency("llama-cpp-python", INSTALL) from None
    return llama_cpp


def _derive(source: ModelArtifact | None, path: Path, context: PassContext, pass_name: str, config: PassConfig,
            precision: str, notes: dict | None = None) -> ModelArtifact:
    return ModelArtifact(path=str(path), format="gguf", framework="gguf", precision=precision,
                         lineage=(*(source.lineage if source else ()), lineage_entry(context, pass_name, config, notes)))


# -- HF folder → GGUF -----------------------------------------------------------------------------------
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
        return _derive(None, out, context, f"gguf.{self.name}", config, config.outtype, notes)


def write_gguf(folder: Path, out: Path, outtype: str) -> dict:
    gguf = _gguf()
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


# -- quantization ---------------------------------------------------------------------------------------
QuantType = Literal["F16", "Q8_0", "Q6_K", "Q5_K_M", "Q5_0", "Q4_K_M", "Q4_0", "Q4_1"]
_EXPECTED = {  # the tensor types a file type is made of; anything else in a 2-D weight is a fallback
    "F16": {"F16"}, "Q8_0": {"Q8_0"}, "Q6_K": {"Q6_K"}, "Q5_K_M": {"Q5_K", "Q6_K"}, "Q5_0": {"Q5_0", "Q6_K", "Q8_0"},
    "Q4_K_M": {"Q4_K", "Q6_K"}, "Q4_0": {"Q4_0", "Q6_K", "Q8_0"}, "Q4_1": {"Q4_1", "Q6_K", "Q8_0"},
}


class QuantizeConfig(PassConfig):
    type: QuantType = "Q4_K_M"
    leave_output_tensor: bool = False
    threads: int | None = Field(default=None, ge=1)


class Quantize(Pass):
    name = "quantize"
    Config = QuantizeConfig
    summary = "llama.cpp's quantizer (llama_model_quantize); re-quantizes quantized input when it must"

    def precision(self, config, input_precision):
        return config.type

    def apply(self, config: QuantizeConfig, artifact: ModelArtifact, context: PassContext) -> ModelArtifact:
        llama_cpp = _llama_cpp()
        if artifact.format != "gguf":
            raise ValueError(f"gguf.quantize takes a GGUF model, got {artifact.format}")
        out = fresh_dir(context.output_dir) / MODEL_FILE
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{config.type}")
        params.allow_requantize = artifact.precision not in ("f16", "f32", "F16", "F32")
        params.quantize_output_tensor = not config.leave_output_tensor
        params.nthread = config.threads or os.cpu_count() or 1
        status = llama_cpp.llama_model_quantize(str(artifact.path).encode(), str(out).encode(), ctypes.byref(params))
        if status != 0 or not out.exists():
            raise RuntimeError(f"llama_model_quantize failed with status {status}")
        notes = tensor_types(out, config.type)
        notes["requantized_from"] = artifact.precision if params.allow_requantize else None
        return _derive(artifact, out, context, f"gguf.{self.name}", config, config.type, notes)


def tensor_types(path: Path, requested: str) -> dict:
    """What the file really holds: tensor counts per type, and the 2-D weights that fell back to
    another type (K-quants need rows divisible by 256; SmolLM's 576-wide rows are not)."""
    gguf = _gguf()
    reader = gguf.GGUFReader(str(path))
    counts: dict[str, int] = {}
    fallbacks = []
    for tensor in reader.tensors:
        kind = tensor.tensor_type.name
        counts[kind] = counts.get(kind, 0) + 1
        if len(tensor.shape) >= 2 and kind not in _EXPECTED.get(requested, {requested}) and kind not in ("F32",):
            fallbacks.append({"tensor": tensor.name, "type": kind, "row": int(tensor.shape[0])})
    return {"tensor_types": counts, "fallbacks": len(fallbacks), "fallback_tensors": fallbacks[:40]}


class RuntimeConfig(PassConfig):
    n_threads: int | None = Field(default=None, ge=1)
    n_batch: int = Field(default=512, ge=1, description="prompt tokens processed per batch")


class Runtime(Pass):
    name = "runtime"
    Config = RuntimeConfig
    cost = 0
    summary = "llama.cpp runtime settings (threads, batch); the file is unchanged"

    def apply(self, config: RuntimeConfig, artifact: ModelArtifact, context: PassContext) -> ModelArtifact:
        return with_runtime_settings(artifact, config, context, f"gguf.{self.name}")


# -- measurement ----------------------------------------------------------------------------------------
def _open(artifact: ModelArtifact, spec: dict, threads: int | None, logits_all: bool):
    llama_cpp = _llama_cpp()
    runtime = artifact.runtime_config
    threads = runtime.get("n_threads") or threads or None
    return llama_cpp.Llama(model_path=artifact.path, n_ctx=spec["context_length"], n_batch=runtime.get("n_batch", 512),
                           n_threads=threads, logits_all=logits_all, verbose=False, seed=0)


def perplexity(artifact: ModelArtifact, spec: dict, threads: int | None) -> dict:
    """exp(mean negative log-likelihood) of each next token, over chunks of context_length tokens of
    the evaluation text, from llama.cpp's own logits."""
    from edgeopt.measure.llm import perplexity_from_logits

    llm = _open(artifact, spec, threads, logits_all=True)
    tokens = llm.tokenize(Path(spec["text"]).read_text(errors="replace").encode(), add_bos=True)[: spec["eval_tokens"]]
    chunks = []
    for start in range(0, len(tokens) - 1, spec["context_length"]):
        chunk = tokens[start:start + spec["context_length"]]
        if len(chunk) < 2:
            break
        llm.reset()
        llm.eval(chunk)
        chunks.append((np.array(llm.scores[: len(chunk)], dtype=np.float32), np.array(chunk)))
    return perplexity_from_logits(chunks, spec["context_length"])


def generation_speed(artifact: ModelArtifact, spec: dict, threads: int | None) -> dict:
    """Prompt processing and generation tokens/s and time to first token, greedy decoding."""
    from edgeopt.measure.llm import speed_summary

    llm = _open(artifact, spec, threads, logits_all=False)
    runs = []
    for repeat in range(spec["repeats"] + 1):  # the first round warms up
        for prompt in spec["prompts"]:
            llm.reset()
            prompt_tokens = len(llm.tokenize(prompt.encode(), add_bos=True))
            started = _now()
            stamps = []
            for _ in llm.create_completion(prompt, max_tokens=spec["max_new_tokens"], temperature=0.0, stream=True):
                stamps.append(_now())
            if repeat:
                runs.append((prompt_tokens, started, stamps))
    return {**speed_summary(runs), "threads": llm.n_threads if hasattr(llm, "n_threads") else threads}


def _now() -> float:
    import time

    return time.perf_counter()


class GgufAdapter:
    name = "gguf"
    install = INSTALL
    passes = {p.name: p for p in (ConvertHf, Quantize, Runtime)}
    package_format = "gguf"

    def probe(self):
        return probe_distribution("llama-cpp-python", "gguf", import_name="llama_cpp")

    def runtime_versions(self) -> dict[str, str]:
        return {"llama-cpp-python": _llama_cpp().__version__}

    def measure_llm(self, artifact: ModelArtifact, spec: dict, threads: int | None, timing: bool, accuracy: bool) -> dict:
        result = {}
        if timing:
            result.update(generation_speed(artifact, spec, threads))
        if accuracy:
            result["accuracy"] = perplexity(artifact, spec, threads)
        return result

    def size_bytes(self, artifact: ModelArtifact) -> int:
        return sum(os.path.getsize(p) for p in artifact.all_paths())

    # -- packaging --------------------------------------------------------------------------------
    def package_files(self, artifact: ModelArtifact) -> dict[str, Path]:
        return files_beside(artifact)

    def package_entry(self, artifact: ModelArtifact) -> str:
        return Path(artifact.path).name

    def runtime_requirement(self, built_with: dict[str, str]) -> dict:
        version = built_with.get("llama-cpp-python") or _llama_cpp().__version__
        major, minor = (int(x) for x in version.split(".")[:2])
        return {"package": "llama-cpp-python", "version_range": f">={major}.{minor}", "measured_with": version,
                "install": f"pip install 'llama-cpp-python>={major}.{minor}'",
                "also": "any llama.cpp build of the same GGUF version (llama-cli, Android llama.cpp apps)"}

    def io_spec(self, artifact: ModelArtifact) -> dict:
        gguf = _gguf()
        reader = gguf.GGUFReader(artifact.path)

        def field(key):
            value = reader.fields.get(key)
            if value is None:
                return None
            part = value.parts[value.data[0]]
            return bytes(part).decode(errors="replace") if value.types and value.types[0] == gguf.GGUFValueType.STRING else part.tolist()

        arch = field("general.architecture")
        return {"inputs": [{"name": "prompt", "dtype": "text", "shape": ["tokens"]}],
                "outputs": [{"name": "completion", "dtype": "text", "shape": ["tokens"]}],
                "architecture": arch, "context_length": (field(f"{arch}.context_length") or [None])[0],
                "chat_template": field("tokenizer.chat_template") is not None,
                "tokenizer": field("tokenizer.ggml.model")}

    def example_script(self) -> str:
        from importlib.resources import files

        return (files("edgeopt.frameworks") / "examples" / "gguf_example.py").read_text()


ADAPTER = GgufAdapter()
