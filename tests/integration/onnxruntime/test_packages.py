"""Packages a device can use: the preprocessing that turns a real input into the model's input (a tokenizer,
image steps), the label list, and for phones ONNX Runtime's mobile form. Real ONNX Runtime, real files."""

import importlib.util
import json
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from edgeopt.errors import ExitStatus

pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.onnxruntime

TEXT = Path("/usr/share/common-licenses/GPL-3")
LENIENT = {"accuracy_retained": 0.5, "speedup": 0.01, "memory_cut": -10.0}
FAST = {"warmup_runs": 2, "min_runs": 5, "max_runs": 50, "time_budget_s": 0.2}
LABELS = ["cat", "dog", "owl"]


def image_classifier(path: Path) -> None:
    """image[batch, 1, 8, 8] → Flatten → MatMul → logits[batch, 3]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = np.random.default_rng(0).normal(scale=0.2, size=(64, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["image"], ["flat"]), helper.make_node("MatMul", ["flat", "w"], ["logits"])],
        "classifier", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])], [numpy_helper.from_array(weights, "w")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def sentence_embedder(path: Path, vocab: int) -> None:
    """input_ids, attention_mask[batch, seq] → an embedding table, averaged over real tokens → embedding[batch, 16]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    table = np.random.default_rng(0).normal(size=(vocab, 16)).astype(np.float32)
    nodes = [helper.make_node("Gather", ["table", "input_ids"], ["tokens"]),
             helper.make_node("Cast", ["attention_mask"], ["mask"], to=TensorProto.FLOAT),
             helper.make_node("Unsqueeze", ["mask", "last"], ["mask3"]),
             helper.make_node("Mul", ["tokens", "mask3"], ["masked"]),
             helper.make_node("ReduceSum", ["masked", "seq"], ["summed"], keepdims=0),
             helper.make_node("ReduceSum", ["mask3", "seq"], ["count"], keepdims=0),
             helper.make_node("Div", ["summed", "count"], ["embedding"])]
    graph = helper.make_graph(
        nodes, "embedder",
        [helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "seq"]) for name in ("input_ids", "attention_mask")],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", 16])],
        [numpy_helper.from_array(table, "table"), numpy_helper.from_array(np.array([2], np.int64), "last"),
         numpy_helper.from_array(np.array([1], np.int64), "seq")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def build_and_package(cli, root: Path, manifest: dict, target: str) -> Path:
    (root / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    out = root / "out"
    built = cli("build", str(root / "manifest.yaml"), "--target", target, "--out", str(out), "--quiet")
    assert built.status == ExitStatus.OK, built.stderr
    packaged = cli("package", str(out))
    assert packaged.status == ExitStatus.OK, packaged.stderr
    return Path(packaged.stdout.strip())


def unpack(archive: Path, into: Path):
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        tar.extractall(into, filter="data")
    spec = importlib.util.spec_from_file_location(f"preprocess_{into.name}", into / "preprocess.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return names, module, json.loads((into / "edgeopt-artifact.json").read_text())


def test_an_image_classifier_for_a_phone_ships_its_preprocessing_labels_and_mobile_form(cli, tmp_path):
    pytest.importorskip("PIL")
    from PIL import Image

    from edgeopt.datasets import load_dataset
    from edgeopt.manifest import Manifest

    image_classifier(tmp_path / "model.onnx")
    rng = np.random.default_rng(1)
    for label in LABELS:
        (tmp_path / "images" / label).mkdir(parents=True)
        for i in range(4):  # not 8x8: the package resizes as the build did
            Image.fromarray(rng.integers(0, 255, (12, 10), dtype=np.uint8)).save(tmp_path / "images" / label / f"{i}.png")
    manifest = {"name": "shelf", "model": {"path": "model.onnx", "format": "onnx", "task": "classification"},
                "evaluation": {"data": {"type": "images", "path": "images", "size": [8, 8], "channels": 1,
                                        "mean": [0.5], "std": [0.25]},
                               "metric": {"name": "fidelity", "output": "logits"}},
                "measure": FAST, "gates": LENIENT, "search": {"frameworks": ["onnxruntime"], "max_candidates": 2}}
    archive = build_and_package(cli, tmp_path, manifest, "snapdragon-8-gen2")

    verified = cli("verify", str(archive))
    assert verified.status == ExitStatus.OK, verified.stderr
    assert "input: the packaged sample, image sample.png" in verified.stdout
    assert "top: " in verified.stdout and any(f"top: {label} (" in verified.stdout for label in LABELS)
    assert "mobile form model/model.ort: runs; max |difference| from model/model.onnx: 0" in verified.stdout

    names, preprocess, descriptor = unpack(archive, tmp_path / "unpacked")
    assert {"model/model.ort", "model/required_operators.config", "preprocessing/labels.txt",
            "preprocessing/sample.png", "preprocess.py"} <= set(names)
    assert (tmp_path / "unpacked" / "preprocessing" / "labels.txt").read_text().split() == LABELS
    assert "ai.onnx;" in (tmp_path / "unpacked" / "model" / "required_operators.config").read_text()
    assert descriptor["preprocessing"]["image"] == {"size": [8, 8], "channels": 1, "mean": [0.5], "std": [0.25],
                                                    "scale": 1 / 255}
    # the device's preprocessing gives the very array the build evaluated the model on
    built = Manifest.model_validate({**manifest, "base_dir": str(tmp_path)}, context={"base_dir": str(tmp_path)})
    dataset = load_dataset(built.evaluation.data, built, "evaluation.data", ["image"])
    first = tmp_path / "images" / "cat" / "0.png"
    np.testing.assert_allclose(preprocess.image_inputs(first)["image"][0], dataset.inputs["image"][0], atol=1e-6)


def test_a_text_model_ships_its_tokenizer_and_runs_real_text(cli, tmp_path):
    pytest.importorskip("tokenizers")
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train([str(TEXT)], trainers.WordLevelTrainer(vocab_size=300, special_tokens=["[PAD]", "[UNK]"]))
    (tmp_path / "model").mkdir()
    tokenizer.save(str(tmp_path / "model" / "tokenizer.json"))
    sentence_embedder(tmp_path / "model" / "model.onnx", tokenizer.get_vocab_size())
    manifest = {"name": "embedder", "model": {"path": "model/model.onnx", "format": "onnx", "task": "embedding"},
                "evaluation": {"data": {"type": "text", "path": str(TEXT), "tokenizer": "model", "limit": 16,
                                        "min_chars": 40},
                               "metric": {"name": "fidelity", "output": "embedding"}, "batch_size": 1},
                "measure": FAST, "gates": LENIENT, "search": {"frameworks": ["onnxruntime"], "max_candidates": 1}}
    archive = build_and_package(cli, tmp_path, manifest, "host")
    verified = cli("verify", str(archive))
    assert verified.status == ExitStatus.OK, verified.stderr
    assert "input: the packaged sample, text 'GNU GENERAL PUBLIC LICENSE" in verified.stdout

    names, preprocess, descriptor = unpack(archive, tmp_path / "unpacked")
    assert "preprocessing/tokenizer.json" in names and descriptor["preprocessing"]["text"]["max_length"] == 128
    assert "model/model.ort" not in names  # a host is not a phone
    feeds = preprocess.text_inputs("The licenses for most software are designed to take away your freedom.")
    expected = tokenizer.encode("The licenses for most software are designed to take away your freedom.").ids
    assert feeds["input_ids"].tolist() == [expected] and feeds["attention_mask"].tolist() == [[1] * len(expected)]
    import subprocess

    run = subprocess.run([sys.executable, "run_example.py", "--text", "Free software is a matter of liberty.",
                          "--check"], cwd=tmp_path / "unpacked", capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "input: text 'Free software is a matter of liberty.'" in run.stdout and "embedding: shape [1, 16]" in run.stdout
