"""What a worker does with each request, whichever runner carries it (a child process, this process,
a Ray task). The line between "the candidate failed" and "edgeopt broke" is drawn here: code of a
framework, of an adapter's pass or runtime, or of a manifest hook runs inside `candidate_code()`, and
what it raises fails that candidate; anything raised outside it is a bug in edgeopt (status internal).
"""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from edgeopt.frameworks.base import FrameworkAdapter, GraphRuntime, LlmRuntime
from edgeopt.passes import NothingToDo, PassContext
from edgeopt.protocol import (
    AccuracyRequest,
    AccuracyResult,
    DiagnoseRequest,
    DiagnosisResult,
    EmulateRequest,
    EmulateResult,
    PassRequest,
    PassResult,
    Response,
    ScoreRequest,
    ScoreResult,
    SessionInfo,
    TimingRequest,
    WindowRequest,
    WindowResult,
)
from edgeopt.registry import load_adapter

ERROR_TEXT_LIMIT = 4000  # the whole error, bounded: converters list unsupported operators after line one


class CandidateFailed(Exception):
    """The candidate failed: its framework, pass, runtime or a manifest hook raised."""


@contextmanager
def candidate_code():
    try:
        yield
    except (CandidateFailed, NothingToDo):
        raise
    except Exception as exc:  # noqa: BLE001 - whatever a framework raises fails this candidate only
        raise CandidateFailed(f"{type(exc).__name__}: {exc}") from exc


def _adapter(module: str) -> FrameworkAdapter:
    return load_adapter(module, FrameworkAdapter)


def _prepare(request) -> None:
    for folder in request.import_paths:  # where manifest hooks (decode, data) live
        if folder not in sys.path:
            sys.path.insert(0, folder)


# -- passes ------------------------------------------------------------------------------------------------
def run_pass(request: PassRequest) -> PassResult:
    _prepare(request)
    adapter = _adapter(request.adapter)
    pass_class = adapter.passes[request.pass_name]
    config = pass_class.Config(**request.config)
    context = PassContext(
        output_dir=Path(request.output_dir), step=request.step, task=request.task,
        calibration_data=Path(request.calibration_data) if request.calibration_data else None,
        calibration_skip_tokens=request.calibration_skip_tokens,
        timing_data=Path(request.timing_data) if request.timing_data else None,
        source_path=Path(request.source_path) if request.source_path else None,
        validation=request.validation,
        shared_dir=Path(request.shared_dir) if request.shared_dir else None,
    )
    started = time.perf_counter()
    with candidate_code():
        artifact = pass_class().apply(config, request.input, context)
    return PassResult(artifact=artifact, seconds=time.perf_counter() - started)


# -- accuracy ----------------------------------------------------------------------------------------------
def evaluate_accuracy(request: AccuracyRequest) -> AccuracyResult:
    from edgeopt.measure.accuracy import graph_accuracy
    from edgeopt.measure.system import current_rss_mb, peak_rss_mb

    _prepare(request)
    runtime = _runtime(request.adapter)
    with candidate_code():
        versions = runtime.versions()  # imports the runtime: its own footprint is reported apart
    import_rss = current_rss_mb()
    started = time.perf_counter()
    threads = None
    with candidate_code():
        if isinstance(runtime, LlmRuntime):
            accuracy = runtime.perplexity(request.artifact, request.llm, request.threads)
        else:
            session = runtime.load(request.artifact, request.threads)
            threads = session.threads
            accuracy = graph_accuracy(session, request)
        size_mb = runtime.size_bytes(request.artifact) / 1e6
    return AccuracyResult(accuracy=accuracy, versions=versions, size_mb=size_mb, load_s=time.perf_counter() - started,
                          threads=threads, runtime_import_rss_mb=import_rss, peak_rss_with_eval_mb=peak_rss_mb())


def _runtime(module: str):
    runtime = _adapter(module).runtime
    if not isinstance(runtime, (GraphRuntime, LlmRuntime)):
        raise TypeError(f"{module} declares no runtime: it cannot load or measure models")
    return runtime


# -- timing ------------------------------------------------------------------------------------------------
class TimingSession:
    """A model loaded once in this process, then timed one window per request."""

    def __init__(self, request: TimingRequest, edgeopt_rss_mb: float | None = None):
        """`edgeopt_rss_mb`: what edgeopt's own modules keep resident in this process (the worker reads it
        as it starts), left out of the memory figures; None (in-process timing) leaves them as read."""
        from edgeopt.measure.system import current_rss_mb
        from edgeopt.measure.timing import timing_feeds

        _prepare(request)
        self.request = request
        self.runtime = _runtime(request.adapter)
        with candidate_code():
            versions = self.runtime.versions()
        self._edgeopt_rss_mb = edgeopt_rss_mb or 0.0
        import_rss = current_rss_mb()
        started = time.perf_counter()
        self._windows = 0
        with candidate_code():
            if isinstance(self.runtime, LlmRuntime):
                self._generator = self.runtime.open_generator(request.artifact, request.llm, request.threads)
                threads, precision = self._generator.threads, None
            else:
                self._session = self.runtime.load(request.artifact, request.threads)
                self._feeds = timing_feeds(self._session, request.timing_data, request.batch_size)
                threads, precision = self._session.threads, self._session.execution_precision
            size_mb = self.runtime.size_bytes(request.artifact) / 1e6
        import platform

        self.info = SessionInfo(versions=versions, size_mb=size_mb, load_s=time.perf_counter() - started,
                                threads=threads, runtime_import_rss_mb=self._without_edgeopt(import_rss),
                                edgeopt_rss_mb=edgeopt_rss_mb, execution_precision=precision, machine=platform.machine())

    def _without_edgeopt(self, rss_mb: float | None) -> float | None:
        return None if rss_mb is None else rss_mb - self._edgeopt_rss_mb

    def window(self, window: WindowRequest) -> WindowResult:
        from edgeopt.measure.timing import time_generation_window, time_graph_window

        first = self._windows == 0
        self._windows += 1
        with candidate_code():
            if isinstance(self.runtime, LlmRuntime):
                result = time_generation_window(self._generator, self.request.llm, warmup=first)
            else:
                result = time_graph_window(self._session, self._feeds, window)
        return result.model_copy(update={"peak_rss_mb": self._without_edgeopt(result.peak_rss_mb)})


# -- emulation (runs inside the target's runtime build) ------------------------------------------------------
def emulate(request: EmulateRequest) -> EmulateResult:
    """Outputs on a few samples, then `counted_runs` single-thread inferences of the timing input between
    marks: an instruction counter outside the process (a qemu plugin) sees the marks, so the steady-state
    count of one inference is the difference between the 2nd and 3rd marks. No metric runs here: the
    outputs are judged on the host (`score`), where the manifest's hooks find their packages."""
    import platform

    import numpy as np

    from edgeopt.datafiles import load_samples
    from edgeopt.estimate.marks import FIRST_MARK, mark
    from edgeopt.measure.accuracy import outputs_of
    from edgeopt.measure.timing import timing_feeds

    _prepare(request)
    runtime = _runtime(request.adapter)
    if not isinstance(runtime, GraphRuntime):
        raise TypeError(f"{request.adapter} has no graph runtime to emulate")
    samples = load_samples(request.eval_data)
    with candidate_code():
        versions = runtime.versions()
        session = runtime.load(runtime.with_threads(request.artifact, 1), 1)
        outputs = outputs_of(session, samples, request.output, request.eval_batch_size)
        np.save(request.save_outputs, outputs)
        feeds = timing_feeds(session, request.timing_data, request.batch_size)
        for run in range(request.counted_runs):
            mark(FIRST_MARK + run)
            session.run(feeds)
        mark(FIRST_MARK + request.counted_runs)
    return EmulateResult(samples=len(outputs), machine=platform.machine(), versions=versions,
                         execution_precision=session.execution_precision, counted_runs=request.counted_runs,
                         first_mark=FIRST_MARK)


def score(request: ScoreRequest) -> ScoreResult:
    from edgeopt.measure.accuracy import agreement, score_outputs

    _prepare(request)
    with candidate_code():  # a decode hook may run here
        emulated, host = score_outputs(request)
    return ScoreResult(accuracy=emulated, host_accuracy=host, agreement=agreement(request.outputs, request.host_outputs))


# -- diagnosis ---------------------------------------------------------------------------------------------
def diagnose(request: DiagnoseRequest) -> DiagnosisResult:
    """Intermediate outputs of a candidate and of its float reference on the first samples, compared."""
    from edgeopt.datafiles import load_samples
    from edgeopt.measure.diagnosis import compare_layers

    _prepare(request)
    runtime = _runtime(request.adapter)
    samples = load_samples(request.eval_data, limit=request.samples)
    with candidate_code():
        reference = runtime.layer_outputs(request.reference, samples)
        candidate = runtime.layer_outputs(request.artifact, samples)
    return DiagnosisResult(**compare_layers(reference, candidate, request.top), samples=request.samples)


ONE_SHOT: dict[str, Callable] = {"pass": run_pass, "accuracy": evaluate_accuracy, "diagnose": diagnose,
                                  "emulate": emulate, "score": score}


def respond(call: Callable[[], object]) -> Response:
    """Runs one operation and says what happened, as data."""
    try:
        result = call()
    except NothingToDo as exc:
        return Response(status="skipped", error=_bounded(str(exc)))
    except CandidateFailed as exc:
        return Response(status="failed", error=_bounded(str(exc)), traceback=_cause_traceback(exc))
    except Exception as exc:  # noqa: BLE001 - edgeopt's own bug: reported as such, never as a failed candidate
        return Response(status="internal", error=_bounded(f"{type(exc).__name__}: {exc}"),
                        traceback=traceback.format_exc())
    return Response(status="ok", result=result.model_dump(mode="json") if result is not None else None)


def _cause_traceback(exc: BaseException) -> str:
    cause = exc.__cause__ or exc
    return "".join(traceback.format_exception(type(cause), cause, cause.__traceback__))


def _bounded(text: str) -> str:
    return text if len(text) <= ERROR_TEXT_LIMIT else text[:ERROR_TEXT_LIMIT] + " …(cut)"
