from pathlib import Path

from edgeopt.artifact import ModelArtifact
from edgeopt.cache import BuildCache
from edgeopt.candidates import CandidateRecord
from edgeopt.search import pareto_frontier


def record(id, p50, rss, size, score, status="ok"):
    from tests.unit.test_gates_and_selection import metrics

    return CandidateRecord(id=id, framework="f", stage="quantize", status=status, provenance="measured-host",
                           metrics=metrics(p50, rss, size, score) if status == "ok" else None)


def test_pareto_frontier_keeps_only_undominated_measured_candidates():
    records = [record("fast", 1, 100, 10, 0.90), record("accurate", 3, 100, 10, 0.99),
               record("dominated", 3, 120, 12, 0.90), record("small", 5, 100, 2, 0.80),
               record("broken", 0, 0, 0, 1.0, status="failed")]
    assert sorted(pareto_frontier(records, higher_is_better=True)) == ["accurate", "fast", "small"]


def test_lower_is_better_metrics_flip_the_accuracy_axis():
    records = [record("a", 1, 100, 10, 0.05), record("b", 1, 100, 10, 0.02)]
    assert pareto_frontier(records, higher_is_better=False) == ["b"]


def test_a_staging_folder_left_by_a_killed_write_is_never_an_entry(tmp_path):
    cache = BuildCache(tmp_path)
    stray = tmp_path / "passes" / "ab" / ".staging-abcd-1234"
    stray.mkdir(parents=True)
    (stray / "entry.json").write_text("{}")
    assert cache.get_pass("abcd", tmp_path / "into") is None


def test_pass_entries_round_trip_with_every_file(tmp_path: Path):
    model = tmp_path / "made" / "model.xml"
    model.parent.mkdir()
    model.write_text("<net/>")
    (model.parent / "model.bin").write_bytes(b"\0" * 16)
    artifact = ModelArtifact(path=str(model), files=("model.bin",), format="openvino-ir", framework="openvino")
    cache = BuildCache(tmp_path / "cache")
    cache.put_pass("k" * 64, artifact, 1.5)
    restored, seconds = cache.get_pass("k" * 64, tmp_path / "restored")
    assert seconds == 1.5 and Path(restored.path) == tmp_path / "restored" / "model.xml"
    assert [p.name for p in restored.all_paths()] == ["model.xml", "model.bin"]
    assert (tmp_path / "restored" / "model.bin").read_bytes() == b"\0" * 16


def test_pass_costs_merge_across_builds_and_a_garbled_record_is_no_record(tmp_path: Path):
    cache = BuildCache(tmp_path)
    cache.record_pass_costs("m", {"int8": 2.0, "fp16": 1.0})
    cache.record_pass_costs("m", {"int8": 3.0})
    assert cache.pass_costs("m") == {"int8": 3.0, "fp16": 1.0} and cache.pass_costs("other") == {}
    (tmp_path / "costs" / "m.json").write_text("{not json")
    assert cache.pass_costs("m") == {}
    assert BuildCache(None).pass_costs("m") == {}  # caching off: nothing recorded, nothing read


def test_cheap_first_orders_a_stage_by_measured_seconds_once_every_step_of_it_has_run_before():
    from types import SimpleNamespace

    from edgeopt.search import ordered_steps

    def step(id, stage, cost, role="candidate"):
        return SimpleNamespace(id=id, stage=stage, cost=cost, role=role)

    steps = (step("base", "convert", 1, "baseline"), step("static", "quantize", 3), step("dynamic", "quantize", 1),
             step("mixed", "quantize", 1), step("tuned", "accelerate", 1))
    plan = SimpleNamespace(steps=steps, search=SimpleNamespace(strategy="cheap-first"))
    order = lambda measured: [s.id for s in ordered_steps(plan, measured)]  # noqa: E731
    assert order({}) == ["base", "dynamic", "mixed", "static", "tuned"]  # declared costs, then the recipe's order
    # static quantization was quicker on this model than its declared cost says: with every quantize step measured
    assert order({"static": 0.5, "dynamic": 0.8, "mixed": 4.0}) == ["base", "static", "dynamic", "mixed", "tuned"]
    # one step never measured: declared costs order the stage, measured seconds break the ties
    assert order({"static": 0.5, "mixed": 0.2}) == ["base", "mixed", "dynamic", "static", "tuned"]
