from pathlib import Path

import pytest
import yaml

from edgeopt.errors import ExitStatus, ManifestError
from edgeopt.manifest import load_manifest, resolve_path

VALID = {
    "name": "demo",
    "model": {"path": "model.onnx", "format": "onnx", "task": "classification"},
    "evaluation": {"data": {"type": "npz", "path": "eval.npz"}, "metric": {"name": "top1"}},
}


def write(tmp_path: Path, data) -> Path:
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def test_valid_manifest_resolves_paths_against_its_folder(tmp_path):
    manifest = load_manifest(write(tmp_path, VALID))
    assert manifest.model.path == str(tmp_path / "model.onnx")
    assert manifest.evaluation.data.path == str(tmp_path / "eval.npz")
    assert manifest.target == "host" and manifest.gates.policy == "default"


def test_unknown_key_names_file_key_and_closest_choice(tmp_path):
    bad = {**VALID, "evaluation": {**VALID["evaluation"], "metrik": {"name": "top1"}}}
    with pytest.raises(ManifestError) as caught:
        load_manifest(write(tmp_path, bad))
    error = caught.value
    assert error.file.endswith("manifest.yaml")
    assert error.key == "evaluation.metrik"
    assert "metric" in error.choices
    assert error.exit_status == ExitStatus.USAGE


def test_bad_literal_lists_valid_values_and_closest(tmp_path):
    bad = {**VALID, "model": {**VALID["model"], "format": "onxx"}}
    with pytest.raises(ManifestError) as caught:
        load_manifest(write(tmp_path, bad))
    assert caught.value.key == "model.format"
    assert caught.value.choices[0] == "onnx"
    assert "hf-transformers" in str(caught.value)


def test_bad_data_source_type_is_reported_at_its_key(tmp_path):
    bad = {**VALID, "evaluation": {**VALID["evaluation"], "data": {"type": "imagez", "path": "x"}}}
    with pytest.raises(ManifestError) as caught:
        load_manifest(write(tmp_path, bad))
    assert caught.value.key == "evaluation.data.type"
    assert "images" in caught.value.choices


def test_unknown_key_inside_a_data_source_suggests_its_fields(tmp_path):
    bad = {**VALID, "evaluation": {**VALID["evaluation"], "data": {"type": "images", "path": "x", "size": [8, 8], "chanels": 1}}}
    with pytest.raises(ManifestError) as caught:
        load_manifest(write(tmp_path, bad))
    assert caught.value.key == "evaluation.data.chanels"
    assert caught.value.choices == ["channels"]


def test_missing_required_key(tmp_path):
    with pytest.raises(ManifestError, match="model: required key is missing"):
        load_manifest(write(tmp_path, {k: v for k, v in VALID.items() if k != "model"}))


def test_cer_needs_a_decode_hook(tmp_path):
    bad = {**VALID, "evaluation": {**VALID["evaluation"], "metric": {"name": "cer"}}}
    with pytest.raises(ManifestError, match="decode"):
        load_manifest(write(tmp_path, bad))


def test_yaml_syntax_error_names_the_line(tmp_path):
    with pytest.raises(ManifestError, match="line 3"):
        load_manifest(write(tmp_path, "name: x\nmodel: [unclosed\n"))


def test_base_dir_cannot_be_set_by_hand(tmp_path):
    with pytest.raises(ManifestError, match="base_dir"):
        load_manifest(write(tmp_path, {**VALID, "base_dir": "/"}))


def test_pkg_paths_resolve_inside_installed_packages():
    assert resolve_path("pkg:edgeopt/frameworks") == Path(__file__).resolve().parents[2] / "edgeopt" / "frameworks"


def test_pkg_path_of_a_missing_package_says_how_to_install():
    from edgeopt.errors import MissingDependency

    with pytest.raises(MissingDependency, match="pip install no-such-package"):
        resolve_path("pkg:no_such_package/model")
