"""The README's manifest snippets are manifests edgeopt accepts: each ```yaml block that is a manifest or a
part of one (not the GitHub Actions job) is validated, parts merged into a minimal manifest."""

import re
from pathlib import Path

import pytest
import yaml

from edgeopt.manifest import load_manifest

README = Path(__file__).resolve().parents[2] / "README.md"
MINIMAL = {"name": "readme", "model": {"path": "model.onnx", "format": "onnx"},
           "evaluation": {"data": {"type": "npz", "path": "eval.npz"}, "metric": {"name": "fidelity"}}}
MANIFEST_KEYS = {"name", "model", "inputs", "evaluation", "calibration", "target", "gates", "prefer", "measure",
                 "search", "llm", "package", "output", "description"}


def snippets() -> list[dict]:
    blocks = re.findall(r"```yaml\n(.*?)```", README.read_text(), flags=re.S)
    parsed = [yaml.safe_load(block) for block in blocks]
    return [p for p in parsed if isinstance(p, dict) and set(p) <= MANIFEST_KEYS]


def merged(part: dict) -> dict:
    whole = {**MINIMAL}
    for key, value in part.items():
        whole[key] = {**whole[key], **value} if isinstance(value, dict) and isinstance(whole.get(key), dict) else value
    return whole


def test_the_readme_has_manifest_snippets():
    assert len(snippets()) >= 4  # the full manifest, inputs, streaming inputs, the language-model manifest


@pytest.mark.parametrize("part", snippets(), ids=lambda part: "+".join(sorted(part)))
def test_each_readme_manifest_snippet_validates(part, tmp_path):
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump(merged(part)))
    load_manifest(path)  # raises ManifestError, naming the key, when the README shows a manifest edgeopt refuses
