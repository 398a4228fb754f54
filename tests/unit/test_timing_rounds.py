"""The verdict logic of timing in rounds, with a fake timing runner that injects noise and preemption:
pass, fail, inconclusive (with extra rounds), a preempted window timed again, a machine busy throughout.
Accuracy still runs for real (the toy framework, in this process)."""

import time
from pathlib import Path

import pytest

from edgeopt.ci_gate import gate_report
from edgeopt.frameworks.base import Generator
from edgeopt.protocol import LlmJob, SessionInfo, WindowResult
from edgeopt.recipes import Recipe
from edgeopt.report import build_report
from tests.unit.builder_kit import build, write_project

RECIPE = Recipe(framework="toy", stages=[
    {"name": "convert", "passes": [{"id": "import", "pass": "toy.load", "role": "baseline", "input": "source"}]},
    {"name": "quantize", "passes": [{"id": "int8", "pass": "toy.round", "input": "baseline", "config": {"bits": 8}}]},
])


class FakeTimer:
    def __init__(self, record_id: str, script):
        self.record_id, self.script, self.count = record_id, script, 0
        self.info = SessionInfo(versions={"toy": "1.0"}, size_mb=1.0, threads=1)

    def window(self, request):
        median, busy = self.script(self.record_id, self.count)
        self.count += 1
        started = time.time()
        return WindowResult(samples_ms=(median,) * request.min_runs, started=started, wall_s=1e-4, cpu_s=1e-4,
                            other_busy_cores=busy, peak_rss_mb=50.0)

    def close(self):
        pass


class FakeTimingRunner:
    """Opens fake timers: `script(record_id, window_number) -> (median ms, other processes' busy cores)`."""

    name, parallelism = "fake", 1

    def __init__(self, script):
        self.script, self.opened = script, []

    def open_timer(self, job):
        record_id = Path(job.workdir).parent.name
        self.opened.append(record_id)
        return FakeTimer(record_id, self.script)

    def close(self):
        pass


@pytest.fixture
def project(tmp_path):
    write_project(tmp_path)
    return tmp_path


def run(project, script, **changes):
    runner = FakeTimingRunner(script)
    result = build(project, timing_runner=runner, the_recipe=RECIPE, **changes)
    return result, {r.id: r for r in result.candidates}["int8"], runner


def steady(baseline_ms, candidate_ms, wobble=0.02):
    def script(record_id, n):
        base = baseline_ms if record_id == "baseline" else candidate_ms
        return base * (1 + wobble * (-1) ** n), 0.0
    return script


def test_a_clear_speedup_passes_with_its_interval_and_no_extra_rounds(project):
    _, int8, _ = run(project, steady(10.0, 4.0))
    gate = int8.gates["speedup"]
    assert gate.verdict == "pass" and gate.interval[0] > 2.0 and 2.3 < gate.value < 2.7
    assert int8.metrics.timing.rounds == 3  # conclusive after the planned rounds


def test_a_clear_shortfall_fails(project):
    _, int8, _ = run(project, steady(10.0, 6.0))
    assert int8.gates["speedup"].verdict == "fail" and int8.gates["speedup"].interval[1] < 2.0


def test_a_speedup_at_the_threshold_gets_extra_rounds_and_stays_inconclusive(project):
    def script(record_id, n):  # candidate alternates around 5 ms: in-round ratios 1.8 and 2.2
        return (10.0, 0.0) if record_id == "baseline" else (10.0 / (1.8 if n % 2 else 2.2), 0.0)

    result, int8, _ = run(project, script)
    gate = int8.gates["speedup"]
    assert gate.verdict == "inconclusive" and gate.interval[0] < 2.0 <= gate.interval[1]
    assert int8.metrics.timing.rounds == 5  # measure.max_rounds in the kit
    assert result.selected is None and not int8.passed_all_gates
    report = build_report(result, "test cpu")
    case = next(c for c in gate_report(report).cases if c.name == "speedup")
    assert not case.passed and case.message.startswith("inconclusive: rerun with more rounds")


def test_extra_rounds_go_to_a_speedup_the_gates_margin_leaves_open(project):
    def script(record_id, n):  # in-round ratios 2.08, 2.25, 2.25, ...: clear of 2.0 alone, not with a 5% margin
        return (10.0, 0.0) if record_id == "baseline" else (10.0 / (2.08 if n % 3 == 0 else 2.25), 0.0)

    _, int8, _ = run(project, script, measure={"speedup_margin": 0.05})
    assert int8.metrics.timing.rounds == 5  # not 3: the gate's verdict was open after the planned rounds
    _, unmargined, _ = run(project, script, measure={"speedup_margin": 0.0})
    assert unmargined.metrics.timing.rounds == 3 and unmargined.gates["speedup"].verdict == "pass"


def test_a_preempted_window_is_timed_again_and_does_not_move_the_verdict(project):
    def script(record_id, n):
        if record_id == "int8" and n == 1:
            return 40.0, 1.3  # another process took the CPU during this window
        return (10.0, 0.0) if record_id == "baseline" else (4.0, 0.0)

    result, int8, _ = run(project, script)
    timing = int8.metrics.timing
    assert len(timing.discarded) == 1 and "other processes kept 1.30 cores busy" in timing.discarded[0].reason
    assert timing.rounds == 3 and max(timing.p50_per_round_ms) == 4.0  # the slow window was not kept
    assert int8.gates["speedup"].verdict == "pass"
    assert any("timed windows ran while other processes used the CPU" in note for note in result.notes)


def test_a_machine_busy_throughout_keeps_its_windows_but_decides_no_speed_gate(project):
    def script(record_id, n):
        return (10.0 if record_id == "baseline" else 4.0), 1.0

    result, int8, _ = run(project, script)
    timing = int8.metrics.timing
    assert timing.rounds == 3 and timing.interference_kept > 0 and timing.interfered_rounds == 3
    assert any("the load persisted" in note for note in result.notes)
    # a busy machine favours candidates that need fewer cores: neither a pass nor a fail can be trusted
    gate = int8.gates["speedup"]
    assert gate.verdict == "inconclusive" and "rerun on a quiet machine" in gate.detail
    assert result.selected is None


def test_the_interval_is_widened_by_the_between_builds_margin(project):
    _, tight, _ = run(project, steady(10.0, 4.0), measure={"speedup_margin": 0.0})
    _, wide, _ = run(project, steady(10.0, 4.0), measure={"speedup_margin": 0.1})
    assert wide.ratios.speedup == tight.ratios.speedup
    assert wide.ratios.speedup_ci[0] == pytest.approx(tight.ratios.speedup_ci[0] * 0.9)
    assert wide.ratios.speedup_ci[1] == pytest.approx(tight.ratios.speedup_ci[1] * 1.1)


def test_timing_processes_stay_open_across_rounds(project):
    _, _, runner = run(project, steady(10.0, 4.0))
    assert sorted(runner.opened) == ["baseline", "int8"]  # one session each, not one per window


class StopsEarly(Generator):
    threads = 1

    def prompt_tokens(self, prompt):
        return 3

    def generate(self, prompt, max_tokens):
        return [time.perf_counter(), time.perf_counter()]  # end-of-sequence after two tokens


def test_a_generation_that_stops_before_the_tokens_asked_for_is_refused():
    from edgeopt.measure.timing import time_generation_window

    job = LlmJob(text="t", context_length=64, eval_tokens=32, prompts=("hi",), max_new_tokens=32, repeats=1)
    with pytest.raises(RuntimeError, match="stopped after 2 of 32 tokens"):
        time_generation_window(StopsEarly(), job, warmup=False)


def test_a_speed_figure_from_too_few_token_intervals_is_refused():
    from edgeopt.builder.figures import TimingRefused, measurements
    from edgeopt.builder.measurer import Timed
    from edgeopt.protocol import AccuracyResult

    window = WindowResult(samples_ms=(10.0, 11.0, 12.0), wall_s=1, cpu_s=1,
                          llm={"ttft_ms": [5.0], "prompt_tokens_per_s": [100.0], "generation_tokens_per_s": [90.0],
                               "generated_tokens": 4, "intervals": 3, "threads": 2})
    timed = Timed(windows={"r1": window})
    with pytest.raises(TimingRefused, match="only 3 intervals"):
        measurements(AccuracyResult(accuracy={"score": 20.0}), timed, 1, min_intervals=16)
    figures = measurements(AccuracyResult(accuracy={"score": 20.0}), timed, 1, min_intervals=3)
    assert figures.llm["intervals"] == 3 and figures.llm["threads"] == 2
