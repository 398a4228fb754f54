"""llama.cpp's quantizer and runtime settings as passes."""

from __future__ import annotations

import ctypes
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from edgeopt.artifact import ModelArtifact
from edgeopt.frameworks.base import runtime_settings_pass
from edgeopt.frameworks.common import fresh_dir
from edgeopt.frameworks.gguf.runtime import (
    MODEL_FILE,
    gguf_artifact,
    gguf_py,
    llama_cpp,
)
from edgeopt.passes import Pass, PassConfig, PassContext

QuantType = Literal["F16", "Q8_0", "Q6_K", "Q5_K_M", "Q5_0", "Q4_K_M", "Q4_0", "Q4_1", "IQ4_NL", "IQ4_XS"]
TensorType = Literal["F16", "Q8_0", "Q6_K", "Q5_K", "Q5_0", "Q4_K", "Q4_0", "IQ4_NL"]  # one tensor's type (ggml's names)
_EXPECTED = {  # the tensor types a file type is made of; anything else in a 2-D weight is a fallback
    "F16": {"F16"}, "Q8_0": {"Q8_0"}, "Q6_K": {"Q6_K"}, "Q5_K_M": {"Q5_K", "Q6_K"}, "Q5_0": {"Q5_0", "Q6_K", "Q8_0"},
    "Q4_K_M": {"Q4_K", "Q6_K"}, "Q4_0": {"Q4_0", "Q6_K", "Q8_0"}, "Q4_1": {"Q4_1", "Q6_K", "Q8_0"},
    "IQ4_NL": {"IQ4_NL", "Q8_0"}, "IQ4_XS": {"IQ4_XS", "Q8_0"},
}


class QuantizeConfig(PassConfig):
    type: QuantType = "Q4_K_M"
    leave_output_tensor: bool = False
    threads: int | None = Field(default=None, ge=1)
    imatrix: bool = Field(default=False, description="weigh each weight's rounding error by how strongly the "
                          "calibration text activates it (llama.cpp's importance matrix: llama-imatrix, then "
                          "llama-quantize --imatrix, from `edgeopt env create llama.cpp`)")
    imatrix_context: int = Field(default=512, ge=16, description="tokens per chunk llama-imatrix evaluates")
    tensor_types: dict[str, TensorType] = Field(
        default_factory=dict, description="tensors (names or regular expressions, as llama-quantize --tensor-type "
        "matches them: 'ffn_down' is every layer's) quantized to another type than the file's, e.g. the ones 4-bit "
        "hurts most kept in Q8_0 (llama-quantize, from `edgeopt env create llama.cpp`)")

    @field_validator("tensor_types")
    @classmethod
    def _tensor_patterns(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:  # each goes to llama-quantize as one NAME=TYPE argument, NAME a regular expression
            if not name or "=" in name or any(c.isspace() for c in name):
                raise ValueError(f"tensor_types: {name!r} is not a tensor name or pattern (e.g. ffn_down, attn_v)")
            try:
                re.compile(name)
            except re.error as error:
                raise ValueError(f"tensor_types: {name!r} is not a regular expression ({error})") from None
        return value

    @property
    def uses_tools(self) -> bool:
        """llama.cpp's own llama-quantize does it: the binding's quantizer takes neither an importance matrix nor
        per-tensor types (both are pointers to C++ containers)."""
        return self.imatrix or bool(self.tensor_types)


class Quantize(Pass):
    name = "quantize"
    Config = QuantizeConfig
    summary = ("llama.cpp's quantizer (llama_model_quantize, or llama-quantize with an importance matrix from the "
               "calibration text); re-quantizes quantized input when it must")

    @classmethod
    def environments(cls, config: QuantizeConfig) -> tuple[str, ...]:
        return ("llama.cpp",) if config.uses_tools else ()

    @classmethod
    def calibrates(cls, config: QuantizeConfig) -> bool:
        return config.imatrix

    def apply(self, config: QuantizeConfig, artifact: ModelArtifact, context: PassContext) -> ModelArtifact:
        if artifact.format != "gguf":
            raise ValueError(f"gguf.quantize takes a GGUF model, got {artifact.format}")
        out = fresh_dir(context.output_dir) / MODEL_FILE
        source = Path(artifact.path)
        requantize = artifact.precision not in ("f16", "f32", "F16", "F32")
        threads = config.threads or os.cpu_count() or 1
        imatrix_notes = None
        if config.uses_tools:
            imatrix_notes = _quantize_with_tools(config, source, out, context, threads, requantize)
        else:
            _quantize(config, source, out, threads, requantize)
        notes = tensor_types(out, config.type, config.tensor_types.values())
        notes["requantized_from"] = artifact.precision if requantize else None
        notes["imatrix"] = imatrix_notes
        return gguf_artifact(artifact, out, context, f"gguf.{self.name}", config, config.type, notes)


def _quantize(config: QuantizeConfig, source: Path, out: Path, threads: int, requantize: bool) -> None:
    llama = llama_cpp()
    params = llama.llama_model_quantize_default_params()
    params.ftype = getattr(llama, f"LLAMA_FTYPE_MOSTLY_{config.type}")
    params.allow_requantize = requantize
    params.quantize_output_tensor = not config.leave_output_tensor
    params.nthread = threads
    status = llama.llama_model_quantize(str(source).encode(), str(out).encode(), ctypes.byref(params))
    if status != 0 or not out.exists():
        raise RuntimeError(f"llama_model_quantize failed with status {status}")


def _quantize_with_tools(config: QuantizeConfig, source: Path, out: Path, context: PassContext, threads: int,
                         requantize: bool) -> dict | None:
    """llama-quantize, reading the importance matrix when the config asks for one; returns what the matrix was
    fitted on (None without one)."""
    from edgeopt.envs import LLAMA_CPP, environment
    from edgeopt.frameworks.gguf import imatrix

    env = environment(LLAMA_CPP, os.environ)
    matrix, notes = _importance_matrix(config, source, out, context, env, threads) if config.imatrix else (None, None)
    imatrix.quantize(env.tool("llama-quantize"), source, out, config.type, matrix, threads, requantize,
                     config.leave_output_tensor, config.tensor_types)
    return notes  # the matrix stays in the build's shared folder (not cached, not packaged: the file alone is the model)


def _importance_matrix(config: QuantizeConfig, source: Path, out: Path, context: PassContext, env,
                       threads: int) -> tuple[Path, dict]:
    """The importance matrix of `source` on the calibration text (made once per build, whichever imatrix step comes
    first); what it was fitted on, and how long it took."""
    from edgeopt.frameworks.gguf import imatrix
    from edgeopt.hashing import files_digest, value_digest

    if context.calibration_data is None:
        raise ValueError("an importance matrix needs calibration text, and the build gave the pass none")
    compute_tool = env.tool("llama-imatrix")
    text = out.parent / "calibration.txt"
    notes = imatrix.calibration_text(source, context.calibration_data, context.calibration_skip_tokens,
                                     config.imatrix_context, text)
    seconds: list[float] = []

    def make(matrix: Path) -> None:
        seconds.append(imatrix.compute(compute_tool, source, text, matrix, config.imatrix_context, threads))

    # the matrix depends on the model, the text it was fitted on and the chunk length: nothing else
    key = value_digest([files_digest([source]), files_digest([text]), config.imatrix_context])[:24]
    matrix, reused = imatrix.computed_once(context.shared_dir or out.parent, key, make)
    text.unlink()
    notes["imatrix_reused"] = reused
    notes["imatrix_seconds"] = round(seconds[0], 1) if seconds else 0.0
    return matrix, notes


def tensor_types(path: Path, requested: str, overrides: Iterable[str] = ()) -> dict:
    """What the file really holds: tensor counts per type, and the 2-D weights that fell back to
    another type (K-quants need rows divisible by 256; SmolLM's 576-wide rows are not). `overrides`: the types
    asked for some tensors, which are not fallbacks."""
    expected = _EXPECTED.get(requested, {requested}) | set(overrides)
    reader = gguf_py().GGUFReader(str(path))
    counts: dict[str, int] = {}
    fallbacks = []
    for tensor in reader.tensors:
        kind = tensor.tensor_type.name
        counts[kind] = counts.get(kind, 0) + 1
        if len(tensor.shape) >= 2 and kind not in expected and kind not in ("F32",):
            fallbacks.append({"tensor": tensor.name, "type": kind, "row": int(tensor.shape[0])})
    return {"tensor_types": counts, "fallbacks": len(fallbacks), "fallback_tensors": fallbacks[:40]}


class RuntimeConfig(PassConfig):
    n_threads: int | None = Field(default=None, ge=1)
    n_batch: int = Field(default=512, ge=1, description="prompt tokens processed per batch")


Runtime = runtime_settings_pass("gguf", RuntimeConfig,
                                summary="llama.cpp runtime settings (threads, batch); the file is unchanged")
