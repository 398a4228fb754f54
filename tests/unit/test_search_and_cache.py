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
