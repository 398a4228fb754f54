"""The worker protocol: typed requests and responses, JSON on the wire.

A request is one operation (a pass, an accuracy run, a timing session and its windows, a layer
diagnosis) with everything it needs by value or by path, so it can run under another interpreter or on
another machine. A response says which of four things happened:
  ok        the operation produced its result
  skipped   the operation had nothing to do (a quantizer that found no node to quantize): no candidate
  failed    the candidate failed (its framework raised, its model does not load): recorded, the build goes on
  internal  edgeopt's own worker code broke: a bug, which ends the build with exit status 3
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from edgeopt.artifact import ModelArtifact


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MetricRequest(_Message):
    name: str
    output: int | str = 0
    decode: str | None = None


class LlmJob(_Message):
    """How a language model is scored and timed, with the evaluation text by path."""

    text: str
    context_length: int
    eval_tokens: int
    prompts: tuple[str, ...]
    max_new_tokens: int
    repeats: int
    min_intervals: int = Field(default=16, description="a generation speed from fewer token intervals is refused")


class Validation(_Message):
    """What accuracy-aware passes validate against: the evaluation data, the metric, the baseline's outputs."""

    data: str
    metric: MetricRequest
    reference_outputs: str | None = None


class _Request(_Message):
    adapter: str = Field(description="module of the framework adapter that serves the request")
    import_paths: tuple[str, ...] = Field(default=(), description="folders put on sys.path first (manifest hooks)")


class PassRequest(_Request):
    op: Literal["pass"] = "pass"
    step: str
    pass_name: str = Field(description="the pass's short name within its adapter")
    config: dict
    input: ModelArtifact | None = None
    output_dir: str
    task: str = "generic"
    source_path: str | None = None
    calibration_data: str | None = None
    calibration_skip_tokens: int = Field(default=0, ge=0, description="leading tokens of a calibration text that "
                                         "the evaluation scores: not to be fitted on")
    timing_data: str | None = None
    validation: Validation | None = None
    shared_dir: str | None = Field(default=None, description="the build's folder for what passes make once and "
                                   "several steps read")


class AccuracyRequest(_Request):
    op: Literal["accuracy"] = "accuracy"
    artifact: ModelArtifact
    eval_data: str
    eval_batch_size: int = 16
    metric: MetricRequest
    threads: int | None = None
    reference_outputs: str | None = Field(default=None, description="the baseline's outputs, for metrics that read them")
    save_outputs: str | None = Field(default=None, description="where the baseline writes its outputs")
    llm: LlmJob | None = None


class TimingRequest(_Request):
    """Opens a timing session: the model is loaded once; each WindowRequest then times one window."""

    op: Literal["timing"] = "timing"
    artifact: ModelArtifact
    timing_data: str
    batch_size: int = 1
    threads: int | None = None
    llm: LlmJob | None = None


class WindowRequest(_Message):
    op: Literal["window"] = "window"
    warmup_runs: int = 0
    min_runs: int = 1
    max_runs: int = 100
    time_budget_s: float = 1.0


class DiagnoseRequest(_Request):
    op: Literal["diagnose"] = "diagnose"
    artifact: ModelArtifact
    reference: ModelArtifact
    eval_data: str
    samples: int = 8
    top: int = 15


class EmulateRequest(_Request):
    """Run a candidate the way the target's runtime build would, under emulation: its outputs on a few
    evaluation samples, then a few single-thread inferences between marks an instruction counter sees."""

    op: Literal["emulate"] = "emulate"
    artifact: ModelArtifact
    eval_data: str
    eval_batch_size: int = 16
    output: int | str = Field(default=0, description="the output the metric reads")
    save_outputs: str
    timing_data: str
    batch_size: int = 1
    counted_runs: int = Field(default=3, ge=2, description="inferences between marks; the 2nd is the steady state")


class ScoreRequest(_Request):
    """The metric on outputs a target's runtime build wrote, and on the host's outputs of the same samples,
    judged here (a decode hook runs with the host's packages, never under emulation)."""

    op: Literal["score"] = "score"
    eval_data: str
    metric: MetricRequest
    outputs: str
    reference_outputs: str | None = Field(default=None, description="the baseline's emulated outputs (fidelity)")
    host_outputs: str
    host_reference_outputs: str | None = Field(default=None, description="the baseline's, on the host")


Request = Annotated[PassRequest | AccuracyRequest | TimingRequest | DiagnoseRequest | EmulateRequest | ScoreRequest,
                    Field(discriminator="op")]


class RequestEnvelope(_Message):
    request: Request


Status = Literal["ok", "skipped", "failed", "internal"]


class Response(_Message):
    status: Status
    result: dict | None = None
    error: str | None = None
    traceback: str | None = None


# -- results (what `Response.result` holds, per operation) ----------------------------------------------
class PassResult(_Message):
    artifact: ModelArtifact
    seconds: float


class AccuracyResult(_Message):
    accuracy: dict
    versions: dict[str, str] = {}
    size_mb: float | None = None
    load_s: float | None = None
    threads: int | None = None
    runtime_import_rss_mb: float | None = None
    peak_rss_with_eval_mb: float | None = None


class SessionInfo(_Message):
    """What a timing session reports once its model is loaded."""

    versions: dict[str, str] = {}
    size_mb: float | None = None
    load_s: float | None = None
    threads: int | None = None
    runtime_import_rss_mb: float | None = None
    edgeopt_rss_mb: float | None = Field(default=None, description="resident memory of edgeopt's own modules in the "
                                         "timing process, left out of runtime_import_rss_mb and every window's "
                                         "peak_rss_mb; None where it was not read (they include it then)")
    execution_precision: str | None = Field(default=None, description="the precision the runtime says it computes in")
    machine: str | None = Field(default=None, description="platform.machine() of the process that times")


class WindowResult(_Message):
    """One timed window: the runs, and what the machine was doing meanwhile."""

    samples_ms: tuple[float, ...]
    started: float = Field(default=0.0, description="time.time() when the timed runs began (after warm-up)")
    wall_s: float
    cpu_s: float = Field(description="CPU time of the timing process (all its threads) during the window")
    involuntary_switches: int | None = None
    other_busy_cores: float | None = Field(default=None, description="CPU used by other processes, in cores, on average")
    steal_share: float | None = Field(default=None, description="share of the machine's time a hypervisor took")
    load_average: float | None = None
    peak_rss_mb: float | None = None
    llm: dict | None = None  # language models: ttft, tokens/s, the intervals timed


class EmulateResult(_Message):
    samples: int
    machine: str = Field(description="what platform.machine() said inside: aarch64 under emulation")
    versions: dict[str, str] = {}
    execution_precision: str | None = None
    counted_runs: int
    first_mark: int = Field(description="mark number before the first counted inference; one more per inference")


class ScoreResult(_Message):
    accuracy: dict = Field(description="the metric on the emulated outputs of these samples")
    host_accuracy: dict = Field(description="the metric on the host's outputs of the same samples")
    agreement: dict = Field(description="emulated vs host outputs: max_abs_diff, relative_rms, argmax_agreement")


class DiagnosisResult(_Message):
    compared_layers: int
    layers: list[dict]
    samples: int
