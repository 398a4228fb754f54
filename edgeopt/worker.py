"""The child-process side of the protocol: `python -m edgeopt.worker REQUEST.json RESPONSE.json`.

JSON in, JSON out, model files by path: a pass or a measurement can run under another interpreter
(a backend that cannot share the main environment) and a crash or hang costs one candidate, not the build.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from edgeopt.artifact import ModelArtifact
from edgeopt.measure import metrics
from edgeopt.measure.stats import latency_summary
from edgeopt.passes import PassContext

LABELS_KEY = "__labels__"


def run_pass(request: dict) -> dict:
    adapter = importlib.import_module(request["adapter"]).ADAPTER
    pass_class = adapter.passes[request["pass"]]
    artifact = ModelArtifact(**request["input"]) if request.get("input") else None
    context = PassContext(
        output_dir=Path(request["output_dir"]),
        calibration_data=Path(request["calibration_data"]) if request.get("calibration_data") else None,
        source_path=Path(request["source_path"]) if request.get("source_path") else None,
        validation_data=Path(request["validation_data"]) if request.get("validation_data") else None,
        extra=request.get("extra", {}),
    )
    started = time.perf_counter()
    result = pass_class().apply(pass_class.Config(**request["config"]), artifact, context)
    return {"artifact": result.model_dump(mode="json"), "seconds": time.perf_counter() - started}


def measure(request: dict) -> dict:
    adapter = importlib.import_module(request["adapter"]).ADAPTER
    versions = adapter.runtime_versions()  # imports the runtime: its own footprint is reported apart
    rss_runtime = _current_rss_mb()
    artifact = ModelArtifact(**request["artifact"])
    if hasattr(adapter, "measure_llm"):  # language models: perplexity and tokens/s, measured by the runtime itself
        return _measure_language_model(adapter, artifact, request, versions, rss_runtime)
    started = time.perf_counter()
    session = adapter.load(artifact, request.get("threads"))
    load_s = time.perf_counter() - started

    result = {
        "load_s": load_s,
        "runtime_import_rss_mb": rss_runtime,
        "size_mb": adapter.size_bytes(artifact) / 1e6,
        "threads": session.threads,
        "versions": versions,
    }
    if request.get("timing", True):
        result.update(_time(session, request))
        result["peak_rss_mb"] = _peak_rss_mb()
    if request.get("evaluate_accuracy", True):
        result["accuracy"] = _accuracy(session, request)
        result["peak_rss_with_eval_mb"] = _peak_rss_mb()
    return result


def _measure_language_model(adapter, artifact: ModelArtifact, request: dict, versions: dict, rss_runtime) -> dict:
    timing, accuracy = request.get("timing", True), request.get("evaluate_accuracy", True)
    started = time.perf_counter()
    result = adapter.measure_llm(artifact, request["llm"], request.get("threads"), timing, accuracy)
    result.update({"seconds": time.perf_counter() - started, "runtime_import_rss_mb": rss_runtime,
                   "size_mb": adapter.size_bytes(artifact) / 1e6, "versions": versions})
    result.setdefault("threads", request.get("threads"))
    if timing:
        result["peak_rss_mb"] = _peak_rss_mb()
    if accuracy:
        result["peak_rss_with_eval_mb"] = _peak_rss_mb()
    return result


def _time(session, request: dict) -> dict:
    with np.load(request["timing_data"]) as data:
        timing = {k: data[k] for k in data.files if k != LABELS_KEY}
    batch_size = request["batch_size"]
    feeds = session.feeds(timing, 0, batch_size)
    for _ in range(request["warmup_runs"]):
        session.run(feeds)
    samples: list[float] = []
    budget_end = time.perf_counter() + request["time_budget_s"]
    while len(samples) < request["max_runs"] and (len(samples) < request["min_runs"] or time.perf_counter() < budget_end):
        t0 = time.perf_counter()
        session.run(feeds)
        samples.append(time.perf_counter() - t0)
    return latency_summary(samples, batch_size)


def _accuracy(session, request: dict) -> dict:
    with np.load(request["eval_data"], allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files if k != LABELS_KEY}
        labels = data[LABELS_KEY] if LABELS_KEY in data.files else None
    count = len(next(iter(arrays.values())))
    batch = session.fixed_batch() or request["eval_batch_size"]
    metric = request["metric"]
    output = metric["output"]
    index = session.output_names.index(output) if isinstance(output, str) else int(output)
    chunks = [session.run(session.feeds(arrays, i, i + batch))[index] for i in range(0, count, batch)]
    outputs = np.concatenate(chunks)
    reference = np.load(request["reference_outputs"]) if request.get("reference_outputs") else None
    if request.get("save_outputs"):
        np.save(request["save_outputs"], outputs)
    return metrics.compute(metric, outputs, labels, reference)


def _current_rss_mb() -> float | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except OSError:  # no /proc (macOS): not available, rather than a failed measurement
        return None


def _peak_rss_mb() -> float:
    # VmHWM belongs to this process image alone. getrusage's ru_maxrss would not do on Linux: it carries
    # the high-water mark of the forked parent's copy across exec, so a big build process inflates it.
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    import resource  # macOS and other systems without /proc: ru_maxrss is in bytes there

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak * 1024 / 1e6


def diagnose(request: dict) -> dict:
    """Intermediate outputs of a candidate and of its float reference on the first samples, compared."""
    from edgeopt.measure.diagnosis import compare_layers

    adapter = importlib.import_module(request["adapter"]).ADAPTER
    with np.load(request["eval_data"]) as data:
        arrays = {k: data[k][: request["samples"]] for k in data.files if k != LABELS_KEY}
    reference = adapter.layer_outputs(ModelArtifact(**request["reference"]), arrays)
    candidate = adapter.layer_outputs(ModelArtifact(**request["artifact"]), arrays)
    return {**compare_layers(reference, candidate, request.get("top", 15)), "samples": request["samples"]}


OPERATIONS = {"pass": run_pass, "measure": measure, "diagnose": diagnose}


def main(argv: list[str]) -> int:
    request_path, response_path = Path(argv[0]), Path(argv[1])
    request = json.loads(request_path.read_text())
    for folder in request.get("import_paths", []):  # where manifest hooks (decode, data) live
        sys.path.insert(0, folder)
    try:
        response = {"ok": True, "result": OPERATIONS[request["op"]](request)}
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent as data
        response = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
    partial = response_path.with_suffix(".partial")
    partial.write_text(json.dumps(response))
    partial.replace(response_path)  # the parent never reads a half-written response
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
