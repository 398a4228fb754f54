"""llama.cpp (GGUF): Hugging Face folder → GGUF (F16/F32) written with gguf-py, quantization with
llama.cpp's own quantizer, and measurement with llama.cpp (perplexity from its logits, tokens/s)."""

from __future__ import annotations

from edgeopt.frameworks.base import FrameworkAdapter
from edgeopt.frameworks.common import probe_distribution
from edgeopt.frameworks.gguf.convert import ConvertHf
from edgeopt.frameworks.gguf.passes import Quantize, Runtime
from edgeopt.frameworks.gguf.runtime import INSTALL, LlamaCppRuntime


class GgufAdapter(FrameworkAdapter):
    name = "gguf"
    install = INSTALL
    passes = {p.name: p for p in (ConvertHf, Quantize, Runtime)}
    runtime = LlamaCppRuntime()

    def probe(self):
        return probe_distribution("llama-cpp-python", "gguf", import_name="llama_cpp")


ADAPTER = GgufAdapter()
