"""Hugging Face → GGUF: which pre-tokenizer edgeopt's writer names, and the llama.cpp converter's environment
(made from llama-cpp-python's source release) — its state, what it keeps, and how the plan shows it."""

import io
import json
import tarfile

import pytest

from edgeopt.envs import LLAMA_CPP, environment
from edgeopt.envs.llama_cpp import DISTRIBUTION, _extract_converter
from edgeopt.errors import MissingDependency
from edgeopt.frameworks.gguf.convert import pre_tokenizer_name
from tests.conftest import REPO

BYTE_LEVEL = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
          r"\s*[\r\n]+|\s+(?!\S)|\s+")


@pytest.mark.parametrize("pre_tokenizer, name", [
    (BYTE_LEVEL, "gpt-2"),
    ({"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True}, BYTE_LEVEL]}, "smollm"),
    ({"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": LLAMA3}, "behavior": "Isolated", "invert": False},
        {**BYTE_LEVEL, "use_regex": False}]}, "llama-bpe"),
    ({"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": LLAMA3.replace(r"\p{N}{1,3}", r"\p{N}")}, "behavior": "Isolated"},
        {**BYTE_LEVEL, "use_regex": False}]}, "qwen2"),
])
def test_the_writer_names_the_pre_tokenizer_from_the_tokenizer_itself(pre_tokenizer, name):
    assert pre_tokenizer_name({"pre_tokenizer": pre_tokenizer}) == name


def test_an_unknown_pre_tokenizer_is_refused_not_written_as_default():
    # llama.cpp would split text with its default regex, unlike the model's tokenizer: a silent accuracy loss
    with pytest.raises(ValueError, match="llama.cpp's converter"):
        pre_tokenizer_name({"pre_tokenizer": {"type": "Metaspace", "replacement": "▁"}})
    with pytest.raises(ValueError):  # digits split three at a time is not SmolLM's single digits
        pre_tokenizer_name({"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": False}, BYTE_LEVEL]}})


def test_a_missing_converter_names_the_command_that_makes_it(tmp_path):
    env = environment(LLAMA_CPP, {"EDGEOPT_ENV_DIR": str(tmp_path)})
    assert not env.status().present
    with pytest.raises(MissingDependency, match="edgeopt env create llama.cpp"):
        env.require()


def test_a_converter_made_from_another_release_is_out_of_date(tmp_path):
    env = environment(LLAMA_CPP, {"EDGEOPT_ENV_DIR": str(tmp_path)})
    env.path.mkdir()
    (env.path / "env.json").write_text(json.dumps({"packages": {DISTRIBUTION: "0.0.1"}, "key": "k"}))
    status = env.status()
    assert not status.present and "0.0.1" in status.detail and "--force" in status.detail


def test_only_the_converter_and_what_it_imports_are_kept_from_the_source_release(tmp_path):
    archive = tmp_path / "release.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name in ("convert_hf_to_gguf.py", "conversion/llama.py", "gguf-py/gguf/__init__.py", "LICENSE",
                     "src/llama-vocab.cpp", "convert_hf_to_gguf_update.py"):
            data = f"# {name}\n".encode()
            info = tarfile.TarInfo(f"llama_cpp_python-9.9/vendor/llama.cpp/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    into = tmp_path / "env"
    assert _extract_converter(archive, into) == 4
    kept = sorted(str(p.relative_to(into)) for p in into.rglob("*") if p.is_file())
    assert kept == ["LICENSE", "conversion/llama.py", "convert_hf_to_gguf.py", "gguf-py/gguf/__init__.py"]


def test_the_plan_names_the_environment_a_step_runs_code_from(cli, tmp_path):
    project = tmp_path / "project"
    (project / "model").mkdir(parents=True)  # the plan reads no weights; the folder must only be there
    manifest = (REPO / "examples" / "smollm2" / "manifest.yaml").read_text()
    (project / "manifest.yaml").write_text(manifest)
    result = cli("plan", str(project / "manifest.yaml"), environ={"EDGEOPT_ENV_DIR": str(tmp_path / "envs")})
    assert result.status == 0, result.stderr
    assert "converter=auto" in result.stdout
    assert "environment llama.cpp: missing — not created (run `edgeopt env create llama.cpp`)" in result.stdout
