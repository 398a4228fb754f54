"""MLX (Apple's array framework): Hugging Face folder → MLX folder (float16) and 4/8-bit group
quantization with mlx-lm; perplexity and tokens/s with MLX. On Linux MLX runs on its CPU backend:
those figures describe this host, never Apple silicon."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from edgeopt.artifact import ModelArtifact
from edgeopt.frameworks.common import lineage_entry, probe_distribution
from edgeopt.passes import Pass, PassConfig, PassContext

INSTALL = "pip install 'edgeopt[mlx]'"


def _mlx_lm():
    from edgeopt.errors import MissingDependency

    try:
        import mlx.core  # noqa: F401  (plain `mlx` on Linux lacks libmlx: the cpu extra is needed)
        import mlx_lm
    except ImportError as exc:
        raise MissingDependency(f"mlx / mlx-lm ({exc})", INSTALL) from None
    return mlx_lm


def _convert(source: Path, out: Path, **options) -> None:
    mlx_lm = _mlx_lm()
    if out.exists():
        shutil.rmtree(out)  # mlx_lm.convert refuses an existing folder
    out.parent.mkdir(parents=True, exist_ok=True)
    mlx_lm.convert(hf_path=str(source), mlx_path=str(out), **options)


def _artifact(out: Path, context: PassContext, pass_name: str, config: PassConfig, precision: str,
              notes: dict) -> ModelArtifact:
    return ModelArtifact(path=str(out), format="mlx", framework="mlx", precision=precision,
                         lineage=(lineage_entry(context, pass_name, config, notes),))


class ConvertConfig(PassConfig):
    dtype: Literal["float16", "bfloat16", "float32"] = "float16"


class Convert(Pass):
    name = "convert"
    Config = ConvertConfig
    cost = 2
    summary = "Hugging Face folder → MLX folder (safetensors + config + tokenizer)"

    def precision(self, config, input_precision):
        return {"float16": "f16", "bfloat16": "bf16", "float32": "f32"}[config.dtype]

    def apply(self, config: ConvertConfig, artifact, context: PassContext) -> ModelArtifact:
        out = context.output_dir
        _convert(Path(context.source_path), out, dtype=config.dtype)
        return _artifact(out, context, f"mlx.{self.name}", config,
                         self.precision(config, "f32"), {})


class QuantizeConfig(PassConfig):
    bits: Literal[4, 8] = 4
    group_size: Literal[32, 64, 128] = 64
    dtype: Literal["float16", "bfloat16", "float32"] = Field(default="float16", description="of what stays float")


class Quantize(Pass):
    name = "quantize"
    Config = QuantizeConfig
    cost = 2
    summary = "MLX affine group quantization of Linear and Embedding weights"

    def precision(self, config, input_precision):
        return f"q{config.bits}-g{config.group_size}"

    def apply(self, config: QuantizeConfig, artifact, context: PassContext) -> ModelArtifact:
        out = context.output_dir
        _convert(Path(context.source_path), out, quantize=True, q_bits=config.bits, q_group_size=config.group_size,
                 dtype=config.dtype)
        return _artifact(out, context, f"mlx.{self.name}", config,
                         self.precision(config, "f16"), unquantized_layers(out))


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


def perplexity(artifact: ModelArtifact, spec: dict) -> dict:
    import mlx.core as mx

    from edgeopt.measure.llm import perplexity_from_logits

    model, tokenizer = _mlx_lm().load(artifact.path)
    tokens = _tokens(tokenizer, Path(spec["text"]).read_text(errors="replace"))[: spec["eval_tokens"]]
    chunks = []
    for start in range(0, len(tokens) - 1, spec["context_length"]):
        chunk = tokens[start:start + spec["context_length"]]
        if len(chunk) < 2:
            break
        logits = model(mx.array(chunk)[None])[0].astype(mx.float32)
        chunks.append((np.array(logits), np.array(chunk)))
    return perplexity_from_logits(chunks, spec["context_length"])


def _tokens(tokenizer, text: str) -> list[int]:
    tokens = tokenizer.encode(text)
    bos = getattr(tokenizer, "bos_token_id", None)
    # llama.cpp scores with a leading BOS: do the same so the two runtimes score the same sequence
    return tokens if bos is None or (tokens and tokens[0] == bos) else [bos, *tokens]


def generation_speed(artifact: ModelArtifact, spec: dict) -> dict:
    import time

    from edgeopt.measure.llm import speed_summary

    mlx_lm = _mlx_lm()
    model, tokenizer = mlx_lm.load(artifact.path)
    runs = []
    for repeat in range(spec["repeats"] + 1):  # the first round warms up (and compiles kernels)
        for prompt in spec["prompts"]:
            prompt_tokens = len(tokenizer.encode(prompt))
            started, stamps = time.perf_counter(), []
            for _ in mlx_lm.stream_generate(model, tokenizer, prompt, max_tokens=spec["max_new_tokens"]):
                stamps.append(time.perf_counter())
            if repeat:
                runs.append((prompt_tokens, started, stamps))
    return speed_summary(runs)


class MlxAdapter:
    name = "mlx"
    install = INSTALL
    passes = {p.name: p for p in (Convert, Quantize)}
    package_format = "mlx"

    def probe(self):
        return probe_distribution("mlx", "mlx-lm", import_name="mlx_lm")

    def runtime_versions(self) -> dict[str, str]:
        import mlx.core as mx

        return {"mlx": mx.__version__, "mlx-lm": _mlx_lm().__version__, "mlx_device": str(mx.default_device())}

    def measure_llm(self, artifact: ModelArtifact, spec: dict, threads: int | None, timing: bool, accuracy: bool) -> dict:
        result = {}
        if timing:
            result.update(generation_speed(artifact, spec))
        if accuracy:
            result["accuracy"] = perplexity(artifact, spec)
        return result

    def size_bytes(self, artifact: ModelArtifact) -> int:
        return sum(os.path.getsize(p) for p in artifact.all_paths() if p.suffix == ".safetensors")

    # -- packaging --------------------------------------------------------------------------------
    def package_files(self, artifact: ModelArtifact) -> dict[str, Path]:
        root = Path(artifact.path)
        return {str(p.relative_to(root)): p for p in artifact.all_paths()}

    def package_entry(self, artifact: ModelArtifact) -> str:
        return "."

    def runtime_requirement(self, built_with: dict[str, str]) -> dict:
        version = built_with.get("mlx-lm") or _mlx_lm().__version__
        return {"package": "mlx-lm", "version_range": f">={version}", "measured_with": version,
                "install": f"pip install 'mlx-lm>={version}'  # macOS on Apple silicon; on Linux: 'mlx-lm[cpu]'"}

    def io_spec(self, artifact: ModelArtifact) -> dict:
        config = json.loads((Path(artifact.path) / "config.json").read_text())
        return {"inputs": [{"name": "prompt", "dtype": "text", "shape": ["tokens"]}],
                "outputs": [{"name": "completion", "dtype": "text", "shape": ["tokens"]}],
                "architecture": config.get("model_type"), "quantization": config.get("quantization"),
                "context_length": config.get("max_position_embeddings")}

    def example_script(self) -> str:
        from importlib.resources import files

        return (files("edgeopt.frameworks") / "examples" / "mlx_example.py").read_text()


ADAPTER = MlxAdapter()
