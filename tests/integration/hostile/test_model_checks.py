"""Model files from outside, built for real: truncated, corrupt, pointing outside their folder, absurd.

Every file here is written by the test with the framework's own writer (onnx.helper, onnx's external-data
API, gguf.GGUFWriter, openvino.save_model) and then damaged the way a hostile or broken download would be.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeopt.errors import ExitStatus, ModelRejected
from edgeopt.model_checks import check_gguf, check_onnx, check_openvino_ir

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper


def mlp(batch="batch", hidden: int = 16, input_dims=None) -> onnx.ModelProto:
    w = numpy_helper.from_array(np.arange(64 * hidden, dtype=np.float32).reshape(64, hidden), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, input_dims or [batch, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, hidden])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return model


def save(model, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())  # exactly these bytes: onnx.save would follow external data
    return path


def test_a_valid_model_and_its_external_data_pass(tmp_path):
    check_onnx(save(mlp(), tmp_path / "plain" / "model.onnx"))
    folder = tmp_path / "external"
    folder.mkdir()
    onnx.save_model(mlp(), str(folder / "model.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=0)
    assert (folder / "weights.bin").stat().st_size == 64 * 16 * 4
    check_onnx(folder / "model.onnx")


def test_every_truncation_of_a_real_model_is_rejected(tmp_path):
    whole = save(mlp(), tmp_path / "whole.onnx").read_bytes()
    cut = tmp_path / "cut.onnx"
    for size in [0, 1, 7, *range(16, len(whole), 97), len(whole) // 2, len(whole) - 1]:
        cut.write_bytes(whole[:size])
        with pytest.raises(ModelRejected, match="truncated or corrupt"):
            check_onnx(cut)


def test_a_corrupt_model_is_rejected_with_exit_2(tmp_path):
    whole = bytearray(save(mlp(), tmp_path / "m.onnx").read_bytes())
    whole[10:40] = np.random.default_rng(7).integers(0, 256, 30, dtype=np.uint8).tobytes()
    (tmp_path / "m.onnx").write_bytes(bytes(whole[:200]) + b"\xff" * 64)
    with pytest.raises(ModelRejected) as caught:
        check_onnx(tmp_path / "m.onnx")
    assert caught.value.exit_status == ExitStatus.USAGE and str(tmp_path / "m.onnx") in str(caught.value)


def with_external_location(model, location: str, offset: int = 0, length: int = 64 * 16 * 4):
    """The initializer `w` moved to external data at `location`, as onnx's external-data API writes it."""
    from onnx.external_data_helper import set_external_data

    tensor = model.graph.initializer[0]
    set_external_data(tensor, location=location, offset=offset, length=length)
    tensor.data_location = TensorProto.EXTERNAL
    tensor.ClearField("raw_data")
    return model


_RECORDING: list[list[str]] = []


def _audit(event: str, args: tuple) -> None:
    if event == "open" and _RECORDING:
        _RECORDING[-1].append(str(args[0]))


sys.addaudithook(_audit)  # audit hooks cannot be removed: it records only while a test appends a list


@pytest.mark.parametrize("location", ["../../etc/passwd", "sub/../../secret.bin", "/etc/passwd", "..\\..\\x.bin",
                                      "C:\\Windows\\win.ini"])
def test_external_data_outside_the_folder_is_refused_without_being_opened(tmp_path, location):
    path = save(with_external_location(mlp(), location), tmp_path / "a" / "b" / "model.onnx")
    assert onnx.load(str(path), load_external_data=False).graph.initializer[0].external_data[0].value == location
    opened: list[str] = []
    _RECORDING.append(opened)  # every open of any kind (open, io, pathlib, os.open) raises the audit event
    try:
        with pytest.raises(ModelRejected, match="refused") as caught:
            check_onnx(path)
    finally:
        _RECORDING.remove(opened)
    assert any(f.endswith("model.onnx") for f in opened)  # the hook saw the model itself being read
    assert "initializer 'w'" in str(caught.value)
    assert not any("passwd" in f or "secret" in f or "win.ini" in f for f in opened)


def test_external_data_through_a_link_leaving_the_folder_is_refused(tmp_path):
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"\0" * 4096)
    folder = tmp_path / "model"
    path = save(with_external_location(mlp(), "weights.bin"), folder / "model.onnx")
    (folder / "weights.bin").symlink_to(outside)
    with pytest.raises(ModelRejected, match="links outside"):
        check_onnx(path)


def test_missing_or_short_external_data_is_refused(tmp_path):
    path = save(with_external_location(mlp(), "weights.bin"), tmp_path / "model.onnx")
    with pytest.raises(ModelRejected, match="missing beside the model"):
        check_onnx(path)
    (tmp_path / "weights.bin").write_bytes(b"\0" * 100)
    with pytest.raises(ModelRejected, match="truncated"):
        check_onnx(path)
    (tmp_path / "weights.bin").write_bytes(b"\0" * 64 * 16 * 4)
    check_onnx(path)


def test_a_dimension_of_2_to_the_40_is_refused(tmp_path):
    path = save(mlp(input_dims=[2**40, 64]), tmp_path / "model.onnx")
    assert onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim[0].dim_value == 2**40
    with pytest.raises(ModelRejected, match="1,099,511,627,776"):
        check_onnx(path)


def test_minus_one_is_read_as_a_dynamic_dimension_and_other_negatives_are_refused(tmp_path):
    # paddle2onnx writes a dynamic batch as dim_value -1 (PaddleOCR's models in rapidocr-onnxruntime do)
    from edgeopt.inputs import declared_io

    path = save(mlp(input_dims=[-1, 64]), tmp_path / "paddle" / "model.onnx")
    check_onnx(path)
    assert declared_io(onnx.load(str(path)))[0][0].dims == (None, 64)
    with pytest.raises(ModelRejected, match="dimension of -2"):
        check_onnx(save(mlp(input_dims=[-2, 64]), tmp_path / "bad" / "model.onnx"))


def test_a_tensor_declaring_more_than_64_gib_is_refused(tmp_path):
    path = save(mlp(input_dims=[2**20, 2**20, 64]), tmp_path / "model.onnx")  # 2**46 floats: 256 TiB
    with pytest.raises(ModelRejected, match="GiB"):
        check_onnx(path)
    model = mlp()
    model.graph.initializer[0].dims[:] = [2**30, 2**30]  # dims that do not match the bytes held
    with pytest.raises(ModelRejected, match="GiB"):
        check_onnx(save(model, tmp_path / "big_initializer.onnx"))


def test_an_initializer_holding_fewer_bytes_than_it_declares_is_refused(tmp_path):
    model = mlp()
    model.graph.initializer[0].dims[:] = [64, 32]
    with pytest.raises(ModelRejected, match="holds 4,096 bytes"):
        check_onnx(save(model, tmp_path / "model.onnx"))


def test_a_folder_or_missing_file_is_refused(tmp_path):
    with pytest.raises(ModelRejected, match="folder"):
        check_onnx(tmp_path)
    with pytest.raises(ModelRejected, match="no such"):
        check_onnx(tmp_path / "nope.onnx")


# -- GGUF ---------------------------------------------------------------------------------------------------
def real_gguf(path: Path) -> Path:
    gguf = pytest.importorskip("gguf")
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(1)
    writer.add_tensor("w", np.ones((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.mark.gguf
def test_a_real_gguf_passes_and_its_damaged_copies_do_not(tmp_path):
    good = real_gguf(tmp_path / "model.gguf")
    check_gguf(good)
    data = good.read_bytes()
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(data[:10])
    with pytest.raises(ModelRejected, match="truncated"):
        check_gguf(bad)
    bad.write_bytes(b"GGML" + data[4:])
    with pytest.raises(ModelRejected, match="not a GGUF file"):
        check_gguf(bad)
    bad.write_bytes(data[:4] + struct.pack("<I", 99) + data[8:])
    with pytest.raises(ModelRejected, match="version 99"):
        check_gguf(bad)
    bad.write_bytes(data[:8] + struct.pack("<Q", 2**40) + data[16:])  # 2**40 tensors in a few hundred bytes
    with pytest.raises(ModelRejected, match="more than its"):
        check_gguf(bad)


def test_a_model_that_is_not_gguf_is_refused(tmp_path):
    onnx_file = save(mlp(), tmp_path / "model.gguf")
    with pytest.raises(ModelRejected, match="not a GGUF file"):
        check_gguf(onnx_file)


# -- OpenVINO IR --------------------------------------------------------------------------------------------
IR = """<?xml version="1.0"?>
<net name="tiny" version="11">
  <layers>
    <layer id="0" name="w" type="Const" version="opset1">
      <data element_type="f32" shape="4" offset="0" size="16"/>
      <output><port id="0" precision="FP32"><dim>4</dim></port></output>
    </layer>
  </layers>
  <edges/>
</net>
"""


def test_an_ir_passes_and_is_refused_when_its_weights_are_missing_or_short(tmp_path):
    xml = tmp_path / "model.xml"
    xml.write_text(IR)
    with pytest.raises(ModelRejected, match="model.bin are missing"):
        check_openvino_ir(xml)
    (tmp_path / "model.bin").write_bytes(b"\0" * 8)
    with pytest.raises(ModelRejected, match="truncated"):
        check_openvino_ir(xml)
    (tmp_path / "model.bin").write_bytes(b"\0" * 16)
    check_openvino_ir(xml)
    xml.write_text(IR[: len(IR) // 2])
    with pytest.raises(ModelRejected, match="not well-formed"):
        check_openvino_ir(xml)


@pytest.mark.parametrize("doctype", [
    '<!DOCTYPE net [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>',  # an XML bomb
    '<!DOCTYPE net [<!ENTITY x SYSTEM "file:///etc/passwd">]>',  # an external entity
    '<!DOCTYPE net SYSTEM "http://example.invalid/net.dtd">',
])
def test_an_ir_with_a_dtd_or_entities_is_refused(tmp_path, doctype):
    xml = tmp_path / "model.xml"
    xml.write_text(IR.replace('<net name="tiny" version="11">', doctype + '\n<net name="tiny" version="11">'))
    (tmp_path / "model.bin").write_bytes(b"\0" * 16)
    with pytest.raises(ModelRejected, match="DTD or entities"):
        check_openvino_ir(xml)


def test_xml_that_is_not_an_ir_is_refused(tmp_path):
    (tmp_path / "model.xml").write_text("<html><body/></html>")
    (tmp_path / "model.bin").write_bytes(b"")
    with pytest.raises(ModelRejected, match="not an OpenVINO IR"):
        check_openvino_ir(tmp_path / "model.xml")


@pytest.mark.openvino
def test_an_ir_written_by_openvino_passes(tmp_path):
    ov = pytest.importorskip("openvino")
    save(mlp(batch=1), tmp_path / "model.onnx")
    ov.save_model(ov.convert_model(str(tmp_path / "model.onnx")), str(tmp_path / "ir" / "model.xml"))
    check_openvino_ir(tmp_path / "ir" / "model.xml")
    (tmp_path / "ir" / "model.bin").write_bytes((tmp_path / "ir" / "model.bin").read_bytes()[:100])
    with pytest.raises(ModelRejected, match="truncated"):
        check_openvino_ir(tmp_path / "ir" / "model.xml")
