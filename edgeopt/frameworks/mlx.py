"""MLX (Apple's array framework): Hugging Face folder → MLX folder (float16) and 4/8-bit group
quantization with mlx-lm; perplexity and tokens/s with MLX. On Linux MLX runs on its CPU backend:
those figures describe this host, never Apple silicon."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from edgeopt.artifact import ModelArtifact
from edgeopt.frameworks.base import FrameworkAdapter, Generator, LlmRuntime, require
from edgeopt.frameworks.common import probe_distribution
from edgeopt.passes import Pass, PassConfig, PassContext
from edgeopt.protocol import LlmJob

INSTALL = "pip install 'edgeopt[mlx]'"


def _mlx_lm():
    require("mlx.core", "mlx (plain `mlx` on Linux lacks libmlx: the cpu extra is needed)", INSTALL)
    return require("mlx_lm", "mlx-lm", INSTALL)


def _convert(source: Path, out: Path, **options) -> None:
    mlx_lm = _mlx_lm()
    if out.exists():
        shutil.rmtree(out)  # mlx_lm.convert refuses an existing folder
    out.parent.mkdir(parents=True, exist_ok=True)
    mlx_lm.convert(hf_path=str(source), mlx_path=str(out), **options)


def _artifact(out: Path, context: PassContext, pass_name: str, config: PassConfig, precision: str,
              notes: dict) -> ModelArtifact:
    return ModelArtifact(path=str(out), format="mlx", framework="mlx", precision=precision,
                         lineage=(context.lineage(pass_name, config, notes),))


class ConvertConfig(PassConfig):
    dtype: Literal["float16", "bfloat16", "float32"] = "float16"


class Convert(Pass):
    name = "convert"
    Config = ConvertConfig
    cost = 2
    summary = "Hugging Face folder → MLX folder (safetensors + config + tokenizer)"

    def apply(self, config: ConvertConfig, artifact, context: PassContext) -> ModelArtifact:
        out = context.output_dir
        _convert(Path(context.source_path), out, dtype=config.dtype)
        precision = {"float16": "f16", "bfloat16": "bf16", "float32": "f32"}[config.dtype]
        return _artifact(out, context, f"mlx.{self.name}", config, precision, {})


class QuantizeConfig(PassConfig):
    bits: Literal[4, 8] = 4
    group_size: Literal[32, 64, 128] = 64
    dtype: Literal["float16", "bfloat16", "float32"] = Field(default="float16", description="of what stays float")


class Quantize(Pass):
    name = "quantize"
    Config = QuantizeConfig
    cost = 2
    summary = "MLX affine group quantization of Linear and Embedding weights"

    def apply(self, config: QuantizeConfig, artifact, context: PassContext) -> ModelArtifact:
        out = context.output_dir
        _convert(Path(context.source_path), out, quantize=True, q_bits=config.bits, q_group_size=config.group_size,
                 dtype=config.dtype)
        return _artifact(out, context, f"mlx.{self.name}", config, f"q{config.bits}-g{config.group_size}",
                         unquantized_layers(out))


def unquantized_layers(folder: Path) -> dict:
    """Read back from the written weights: every matrix without quantization scales stayed float
    (mlx-lm leaves a layer whose last dimension the group size does not divide, and says nothing)."""
    from safetensors import safe_open

    weights, scales = {}, set()
    for shard in sorted(folder.glob("*.safetensors")):
        with safe_open(str(shard), framework="numpy") as f:
            for key in f.keys():
                if key.endswith(".scales"):
                    scales.add(key[: -len(".scales")])
                elif key.endswith(".weight"):
                    weights[key[: -len(".weight")]] = len(f.get_slice(key).get_shape())
    matrices = [name for name, rank in weights.items() if rank >= 2]
    left = sorted(name for name in matrices if name not in scales)
    return {"quantized_layers": len(matrices) - len(left), "unquantized_layers": len(left),
            "unquantized": left[:40]}


def _tokens(tokenizer, text: str) -> list[int]:
    tokens = tokenizer.encode(text)
    bos = getattr(tokenizer, "bos_token_id", None)
    # llama.cpp scores with a leading BOS: do the same so the two runtimes score the same sequence
    return tokens if bos is None or (tokens and tokens[0] == bos) else [bos, *tokens]


class MlxGenerator(Generator):
    def __init__(self, artifact: ModelArtifact):
        self._mlx_lm = _mlx_lm()
        self._model, self._tokenizer = self._mlx_lm.load(artifact.path)
        ends = set(getattr(self._tokenizer, "eos_token_ids", None) or [])
        if getattr(self._tokenizer, "eos_token_id", None) is not None:
            ends.add(self._tokenizer.eos_token_id)
        self._ends = sorted(ends)

    def _no_end(self, tokens, logits):
        # end-of-sequence never wins the greedy pick: a timed generation runs to the tokens asked for
        if self._ends:
            import mlx.core as mx

            mask = mx.zeros(logits.shape[-1])
            mask[mx.array(self._ends)] = -float("inf")
            logits = logits + mask
        return logits

    def prompt_tokens(self, prompt: str) -> int:
        return len(self._tokenizer.encode(prompt))

    def generate(self, prompt: str, max_tokens: int) -> list[float]:
        stamps = []
        for _ in self._mlx_lm.stream_generate(self._model, self._tokenizer, prompt, max_tokens=max_tokens,
                                              logits_processors=[self._no_end]):
            stamps.append(time.perf_counter())
        return stamps


class MlxRuntime(LlmRuntime):
    framework = "mlx"
    package_format = "mlx"

    def versions(self) -> dict[str, str]:
        import mlx.core as mx

        return {"mlx": mx.__version__, "mlx-lm": _mlx_lm().__version__, "mlx_device": str(mx.default_device())}

    def perplexity(self, artifact: ModelArtifact, job: LlmJob, threads: int | None) -> dict:
        import mlx.core as mx

        from edgeopt.measure.llm import perplexity_from_logits

        model, tokenizer = _mlx_lm().load(artifact.path)
        tokens = _tokens(tokenizer, Path(job.text).read_text(errors="replace"))[: job.eval_tokens]
        chunks = []
        for start in range(0, len(tokens) - 1, job.context_length):
            chunk = tokens[start:start + job.context_length]
            if len(chunk) < 2:
                break
            logits = model(mx.array(chunk)[None])[0].astype(mx.float32)
            chunks.append((np.array(logits), np.array(chunk)))
        return perplexity_from_logits(chunks, job.context_length)

    def open_generator(self, artifact: ModelArtifact, job: LlmJob, threads: int | None) -> MlxGenerator:
        return MlxGenerator(artifact)

    def size_bytes(self, artifact: ModelArtifact) -> int:
        return sum(os.path.getsize(p) for p in artifact.all_paths() if p.suffix == ".safetensors")

    def package_files(self, artifact: ModelArtifact) -> dict[str, Path]:
        root = Path(artifact.path)
        return {str(p.relative_to(root)): p for p in artifact.all_paths()}

    def package_entry(self, artifact: ModelArtifact) -> str:
        return "."

    def runtime_requirement(self, built_with: Mapping[str, str]) -> dict:
        version = built_with.get("mlx-lm") or _mlx_lm().__version__
        return {"package": "mlx-lm", "version_range": f">={version}", "measured_with": version,
                "install": f"pip install 'mlx-lm>={version}'  # macOS on Apple silicon; on Linux: 'mlx-lm[cpu]'"}

    def io_spec(self, artifact: ModelArtifact) -> dict:
        config = json.loads((Path(artifact.path) / "config.json").read_text())
        return {"inputs": [{"name": "prompt", "dtype": "text", "shape": ["tokens"]}],
                "outputs": [{"name": "completion", "dtype": "text", "shape": ["tokens"]}],
                "architecture": config.get("model_type"), "quantization": config.get("quantization"),
                "context_length": config.get("max_position_embeddings")}


class MlxAdapter(FrameworkAdapter):
    name = "mlx"
    install = INSTALL
    passes = {p.name: p for p in (Convert, Quantize)}
    runtime = MlxRuntime()

    def probe(self):
        return probe_distribution("mlx", "mlx-lm", import_name="mlx_lm")


ADAPTER = MlxAdapter()
