"""What a build keeps of how real inputs become model inputs (for packages): read from the manifest."""

import numpy as np
import pytest

from edgeopt.datafiles import save_arrays
from edgeopt.manifest import Manifest
from edgeopt.preprocessing import collect_preprocessing

BASE = {"name": "m", "model": {"path": "model.onnx", "format": "onnx"},
        "evaluation": {"data": {"type": "npz", "path": "eval.npz"}, "metric": {"name": "top1", "output": "y"}}}


def manifest(root, data=None, package=None) -> Manifest:
    raw = {**BASE, "evaluation": {**BASE["evaluation"], **({"data": data} if data else {})},
           **({"package": package} if package else {}), "base_dir": str(root)}
    return Manifest.model_validate(raw, context={"base_dir": str(root)})


def test_arrays_alone_give_a_device_nothing_to_repeat(tmp_path):
    assert collect_preprocessing(manifest(tmp_path), tmp_path / "out") is None
    assert not (tmp_path / "out" / "preprocessing").exists()


def test_labels_come_from_the_manifest_as_a_list_or_a_file(tmp_path):
    found = collect_preprocessing(manifest(tmp_path, package={"labels": ["no", "yes"]}), tmp_path / "a")
    assert found.labels == "labels.txt" and (tmp_path / "a" / "preprocessing" / "labels.txt").read_text() == "no\nyes\n"
    (tmp_path / "names.txt").write_text("cat\n\ndog\n")
    found = collect_preprocessing(manifest(tmp_path, package={"labels": "names.txt"}), tmp_path / "b")
    assert (tmp_path / "b" / "preprocessing" / "labels.txt").read_text() == "cat\ndog\n"


def test_text_ships_the_tokenizer_the_data_was_tokenized_with_and_a_real_sentence(tmp_path):
    (tmp_path / "tok").mkdir()
    (tmp_path / "tok" / "tokenizer.json").write_text('{"model": {}}')
    (tmp_path / "text.txt").write_text("Short.\n\nThis is the first whole sentence that is long enough. And a second one here.")
    data = {"type": "text", "path": "text.txt", "tokenizer": "tok", "max_length": 64, "min_chars": 20}
    found = collect_preprocessing(manifest(tmp_path, data), tmp_path / "out")
    folder = tmp_path / "out" / "preprocessing"
    assert found.text.tokenizer == "tokenizer.json" and found.text.max_length == 64
    assert (folder / "tokenizer.json").read_text() == '{"model": {}}'
    assert (folder / "sample.txt").read_text() == "This is the first whole sentence that is long enough."
    assert sorted(found.files()) == ["sample.txt", "tokenizer.json"]


def test_a_hooks_images_are_turned_back_into_a_sample_picture(tmp_path):
    pytest.importorskip("PIL")
    from PIL import Image

    pixels = np.arange(6 * 5, dtype=np.uint8).reshape(1, 6, 5) * 8
    prepared = (pixels.astype(np.float32) / 255 - 0.5) / 0.25
    save_arrays(tmp_path / "out" / "data" / "eval.npz", {"image": prepared[np.newaxis]})
    data = {"type": "hook", "function": "data:load"}
    steps = {"size": [6, 5], "channels": 1, "mean": [0.5], "std": [0.25]}
    found = collect_preprocessing(manifest(tmp_path, data, {"image": steps}), tmp_path / "out")
    assert found.image.size == (6, 5) and found.sample == "sample.png"
    with Image.open(tmp_path / "out" / "preprocessing" / "sample.png") as image:
        assert np.array_equal(np.asarray(image), pixels[0])


def test_an_image_folder_gives_its_steps_class_names_and_first_image(tmp_path):
    pytest.importorskip("PIL")
    from PIL import Image

    for label in ("b-dog", "a-cat"):
        (tmp_path / "images" / label).mkdir(parents=True)
        Image.new("RGB", (4, 4)).save(tmp_path / "images" / label / "x.png")
    data = {"type": "images", "path": "images", "size": [4, 4], "mean": [0.1, 0.2, 0.3], "std": [1, 1, 1]}
    found = collect_preprocessing(manifest(tmp_path, data), tmp_path / "out")
    assert found.image.mean == [0.1, 0.2, 0.3] and found.sample == "sample.png"
    assert (tmp_path / "out" / "preprocessing" / "labels.txt").read_text() == "a-cat\nb-dog\n"


def test_a_label_file_that_is_not_there_is_refused_at_plan_time(cli, tmp_path):
    import yaml

    (tmp_path / "model.onnx").write_bytes(b"")
    (tmp_path / "m.yaml").write_text(yaml.safe_dump({**BASE, "package": {"labels": "classes.txt"}}))
    result = cli("plan", str(tmp_path / "m.yaml"))
    assert result.status == 2 and "package.labels" in result.stderr and "classes.txt does not exist" in result.stderr
