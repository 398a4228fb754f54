"""What a candidate's measurement says, typed: the one shape that gates, search, the report and the CI
gate read (report.json serialises it under each candidate's `metrics`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Value(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Latency(_Value):
    """Milliseconds per call (language models: between generated tokens), over every kept timed run."""

    p50: float
    p90: float
    p95: float | None = None  # None only in measurements cached before it was recorded
    p99: float
    mean: float
    min: float
    max: float
    runs: int


class Discard(_Value):
    round: int
    reason: str


class TimingStats(_Value):
    """How the latency was timed: in rounds, each round timing the baseline and the candidates of one
    batch in a shuffled order; every figure is kept per round so the spread can be judged."""

    rounds: int = Field(description="rounds this model was timed in")
    windows: int = Field(description="timed windows kept")
    p50_per_round_ms: list[float] = Field(default_factory=list, description="median of each round's window")
    speedup_per_round: list[float] = Field(default_factory=list,
                                           description="the baseline's window median / this one's, round by round")
    discarded: list[Discard] = Field(default_factory=list, description="windows timed again and why")
    interference_kept: int = Field(default=0, description="windows kept although the machine was busy "
                                   "(the retries were spent, or the load never went away)")
    interfered_rounds: int = Field(default=0, description="rounds in which this model's window or the baseline's "
                                   "beside it ran while other processes used the CPU")


class Figure(_Value):
    """One number with where it came from: measured on the device, measured on the build host, simulated
    (the target's runtime build under emulation, a toolkit's simulator) or estimated (a model of the
    target), and how wide its uncertainty is."""

    value: float
    unit: str
    provenance: Literal["measured-device", "measured-host", "simulated", "estimated"]
    source: str
    interval: tuple[float, float] | None = None


class TargetFigures(_Value):
    """What the build knows of a candidate on the device it targets, beside the host's figures."""

    device: str
    latency_ms: Figure | None = None
    accuracy: Figure | None = None
    emulated: dict | None = Field(default=None, description="the metric on the emulated outputs of a few samples, the "
                                  "host's on the same samples, and how far the outputs are apart")
    outputs_differ: bool | None = Field(default=None, description="the target's kernels give outputs beyond fp32 "
                                        "rounding from the host's")
    instructions: int | None = Field(default=None, description="executed per inference, one thread, steady state")
    instruction_classes: dict[str, int] | None = None
    estimator: dict | None = Field(default=None, description="how the latency was estimated: cycles, IPC, memory, "
                                   "threads, calibration")
    execution_precision: str | None = None
    memory_mb: Figure | None = Field(default=None, description="the candidate's memory on the device where the build "
                                     "cannot measure it there or here (an NPU's model): estimated, said how")


class Measurements(_Value):
    latency_ms: Latency | None = None
    throughput_per_s: float | None = None
    peak_rss_mb: float | None = Field(default=None, description="the timing process's high-water mark, less edgeopt_rss_mb")
    runtime_import_rss_mb: float | None = None
    edgeopt_rss_mb: float | None = Field(default=None, description="what edgeopt's own modules kept resident in the "
                                         "timing process: read as it started, left out of the figures above")
    size_mb: float | None = None
    load_s: float | None = None
    threads: int | None = None
    execution_precision: str | None = Field(default=None, description="what the runtime reports computing in")
    timed_on: str | None = Field(default=None, description="the machine architecture the timing process ran on")
    accuracy: dict | None = Field(default=None, description="`score` (what gates compare) and the metric's own figures")
    peak_rss_with_eval_mb: float | None = None
    llm: dict | None = Field(default=None, description="language models: ttft_ms, prompt and generation tokens/s")
    versions: dict[str, str] = Field(default_factory=dict)
    timing: TimingStats | None = None
    target: TargetFigures | None = Field(default=None, description="figures for the target device, when it is not "
                                         "this host; each with its own provenance")
    sources: dict[str, str] = Field(default_factory=dict, description="where each figure above came from: "
                                    "measured-device (the target itself) or measured-host (the build machine)")

    @property
    def score(self) -> float | None:
        return (self.accuracy or {}).get("score")

    @property
    def p50(self) -> float | None:
        return self.latency_ms.p50 if self.latency_ms else None


class Ratios(_Value):
    """A candidate's figures against the baseline's."""

    accuracy_retained: float | None = None
    speedup: float | None = Field(default=None, description="median over rounds of the in-round latency ratio")
    speedup_ci: tuple[float, float] | None = Field(
        default=None, description="bootstrap 95% interval of the speedup, widened by measure.speedup_margin")
    speedup_unreliable: str | None = Field(default=None, description="why the speedup cannot decide a gate, if so")
    peak_rss_cut: float | None = None
    size_cut: float | None = None

    def get(self, key: str):
        return getattr(self, key, None)
