"""Whether the peak-RSS gate can pass at all on a runtime (pure logic on records; test_builder's toy build shows the
note and the verdict's clause end to end)."""

from edgeopt.candidates import CandidateRecord
from edgeopt.gates import GatePolicy, GateResult
from edgeopt.measurements import Measurements, Ratios
from edgeopt.memory_reach import memory_floors, out_of_reach

POLICY = GatePolicy(name="default")  # memory_cut 0.5 of peak RSS


def record(record_id, framework, peak_mb, runtime_mb, memory_from="measured-host", source="measured-host",
           fast=False, size_cut=0.7):
    gates = {} if record_id == "baseline" else {
        "accuracy_retained": GateResult(verdict="pass", value=1.0, threshold=0.95),
        "speedup": GateResult(verdict="pass" if fast else "fail", value=3.0 if fast else 1.4, threshold=2.0),
        "memory_cut": GateResult(verdict="fail", value=1 - peak_mb / 86.5, threshold=0.5, provenance=memory_from)}
    return CandidateRecord(id=record_id, framework=framework, stage="quantize", status="ok", provenance=source,
                           gates=gates, ratios=Ratios(size_cut=size_cut),
                           metrics=Measurements(peak_rss_mb=peak_mb, runtime_import_rss_mb=runtime_mb,
                                                sources={"peak_rss_mb": source}))


BASELINE = record("baseline", "onnxruntime", 86.5, 44.5)


def test_a_runtime_holding_more_than_the_gate_allows_is_out_of_reach_with_the_numbers():
    # the OCR recognizer's figures: ONNX Runtime alone 44.5 MB of the baseline's 86.5, OpenVINO alone 47.8
    records = [record("int8-static", "onnxruntime", 74.9, 44.6), record("ov-int8", "openvino", 125.3, 47.9),
               record("ov-int8-acc", "openvino", 132.0, 47.8, fast=True),
               record("ov-fp16", "openvino", 134.3, 47.8, fast=True, size_cut=0.47)]
    floors = {f.framework: f for f in memory_floors(BASELINE, records, POLICY)}
    assert floors["onnxruntime"].runtime_mb == 44.5  # the least any process of that runtime held
    assert round(floors["openvino"].best_cut, 3) == round(1 - 47.8 / 86.5, 3)
    assert [f.framework for f in out_of_reach(floors.values())] == ["onnxruntime", "openvino"]
    sentence = floors["onnxruntime"].sentence()
    assert "44.5 MB" in sentence and "86.5 MB" in sentence and "0.49 < 0.5" in sentence
    assert "measured on the build host, not the target" in sentence and "memory_basis: size" in sentence
    # the way out, tried on the build's own figures: who passes every other gate and cuts the file by half
    assert sentence.endswith("none of its candidates would pass every gate either")
    assert floors["openvino"].pass_on_size == ("ov-int8-acc",)  # ov-fp16 cuts the file by 0.47 only
    assert floors["openvino"].sentence().endswith("under which ov-int8-acc would pass every gate")


def test_a_runtime_small_beside_the_model_is_within_reach():
    big = record("baseline", "onnxruntime", 194.0, 44.0)
    assert out_of_reach(memory_floors(big, [record("lean", "onnxruntime", 90.0, 44.0)], POLICY)) == []


def test_figures_from_the_board_say_so():
    board = record("baseline", "onnxruntime", 60.0, 40.0, source="measured-device")
    (floor,) = memory_floors(board, [], POLICY)
    assert not floor.reachable and "measured on the target" in floor.sentence()


def test_nothing_is_said_where_the_gate_does_not_read_a_process_peak():
    records = [record("int8", "onnxruntime", 74.9, 44.6)]
    assert memory_floors(BASELINE, records, POLICY.model_copy(update={"memory_basis": "size"})) == []
    assert memory_floors(BASELINE, records, POLICY.model_copy(update={"memory_cut": None})) == []
    npu = record("rknn-int8", "rknn", 10.0, 5.0, memory_from="estimated")  # an NPU model's memory, estimated
    assert [f.framework for f in memory_floors(BASELINE, [npu], POLICY)] == ["onnxruntime"]
    unmeasured = BASELINE.model_copy(update={"metrics": Measurements()})
    assert memory_floors(unmeasured, records, POLICY) == []
