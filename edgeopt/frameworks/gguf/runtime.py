"""llama.cpp as the runtime: perplexity from its own logits, and generation timed token by token."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from edgeopt.artifact import ModelArtifact
from edgeopt.frameworks.base import Generator, LlmRuntime, require
from edgeopt.passes import PassConfig, PassContext
from edgeopt.protocol import LlmJob

INSTALL = "pip install 'edgeopt[gguf]'"
MODEL_FILE = "model.gguf"


def gguf_py():
    return require("gguf", "gguf (gguf-py)", INSTALL)


def llama_cpp():
    return require("llama_cpp", "llama-cpp-python", INSTALL)


def gguf_artifact(source: ModelArtifact | None, path: Path, context: PassContext, pass_name: str,
                  config: PassConfig, precision: str, notes: dict | None = None) -> ModelArtifact:
    return ModelArtifact(path=str(path), format="gguf", framework="gguf", precision=precision,
                         lineage=(*(source.lineage if source else ()), context.lineage(pass_name, config, notes)))


def default_threads() -> int:
    # llama-cpp-python's own default is cpu_count // 2 (1 thread on a 2-core machine): always say how many
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _open(artifact: ModelArtifact, job: LlmJob, threads: int | None, logits_all: bool):
    runtime = artifact.runtime_config
    threads = runtime.get("n_threads") or threads or default_threads()
    return llama_cpp().Llama(model_path=artifact.path, n_ctx=job.context_length, n_batch=runtime.get("n_batch", 512),
                             n_threads=threads, logits_all=logits_all, verbose=False, seed=0), threads


class LlamaGenerator(Generator):
    def __init__(self, artifact: ModelArtifact, job: LlmJob, threads: int | None):
        self._llm, self.threads = _open(artifact, job, threads, logits_all=False)
        # every end-of-generation token gets -inf: a timed generation runs to the tokens asked for
        vocab = self._llm.n_vocab()
        eog = [t for t in range(vocab) if _is_end_of_generation(self._llm, t)]
        self._bias = {t: float("-inf") for t in eog}

    def prompt_tokens(self, prompt: str) -> int:
        return len(self._llm.tokenize(prompt.encode(), add_bos=True))

    def generate(self, prompt: str, max_tokens: int) -> list[float]:
        self._llm.reset()
        stamps = []
        for _ in self._llm.create_completion(prompt, max_tokens=max_tokens, temperature=0.0, stream=True,
                                             logit_bias=self._bias):
            stamps.append(time.perf_counter())
        return stamps


def _is_end_of_generation(llm, token: int) -> bool:
    lib = llama_cpp()
    vocab = lib.llama_model_get_vocab(llm.model) if hasattr(lib, "llama_model_get_vocab") else llm.model
    check = getattr(lib, "llama_vocab_is_eog", None) or lib.llama_token_is_eog
    return bool(check(vocab, token))


class LlamaCppRuntime(LlmRuntime):
    framework = "gguf"
    package_format = "gguf"

    def versions(self) -> dict[str, str]:
        return {"llama-cpp-python": llama_cpp().__version__}

    def perplexity(self, artifact: ModelArtifact, job: LlmJob, threads: int | None) -> dict:
        """exp(mean negative log-likelihood) of each next token, over chunks of context_length tokens of
        the evaluation text, from llama.cpp's own logits."""
        from edgeopt.measure.llm import perplexity_from_logits

        llm, _ = _open(artifact, job, threads, logits_all=True)
        tokens = llm.tokenize(Path(job.text).read_text(errors="replace").encode(), add_bos=True)[: job.eval_tokens]
        chunks = []
        for start in range(0, len(tokens) - 1, job.context_length):
            chunk = tokens[start:start + job.context_length]
            if len(chunk) < 2:
                break
            llm.reset()
            llm.eval(chunk)
            chunks.append((np.array(llm.scores[: len(chunk)], dtype=np.float32), np.array(chunk)))
        return perplexity_from_logits(chunks, job.context_length)

    def open_generator(self, artifact: ModelArtifact, job: LlmJob, threads: int | None) -> LlamaGenerator:
        return LlamaGenerator(artifact, job, threads)

    def runtime_requirement(self, built_with: Mapping[str, str]) -> dict:
        version = built_with.get("llama-cpp-python") or llama_cpp().__version__
        major, minor = (int(x) for x in version.split(".")[:2])
        return {"package": "llama-cpp-python", "version_range": f">={major}.{minor}", "measured_with": version,
                "install": f"pip install 'llama-cpp-python>={major}.{minor}'",
                "also": "any llama.cpp build of the same GGUF version (llama-cli, Android llama.cpp apps)"}

    def io_spec(self, artifact: ModelArtifact) -> dict:
        gguf = gguf_py()
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
