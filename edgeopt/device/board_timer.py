"""Timing on the board itself: copied to the device with the model and run by the board's own Python.

Standalone on purpose (standard library + numpy + the runtime): edgeopt is not installed on the board.
JSON lines on stdin, one JSON reply per line on stdout (the runtime's own chatter goes to stderr):
  {"op": "open", "framework": "onnxruntime"|"openvino", "model": PATH, "runtime_config": {...},
   "threads": N|null, "data": NPZ, "batch_size": B|null (null: NPZ holds the feeds as they are)}
  {"op": "window", "warmup_runs": W, "min_runs": A, "max_runs": B, "time_budget_s": T}
Replies: {"status": "ok", "result": {...}} or {"status": "failed", "error": "...", "install": "..."}.
"""

import json
import os
import platform
import resource
import sys
import time

INSTALL = {"onnxruntime": "pip install onnxruntime numpy", "openvino": "pip install openvino numpy"}


def _status_mb(field):
    """A figure of /proc/self/status in MB (None where the board has no procfs)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    return None


def peak_rss_mb():
    peak = _status_mb("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


def current_rss_mb():
    """Read once the runtime is imported, before the model loads: what the runtime alone holds, the least any
    model's process can peak at."""
    return _status_mb("VmRSS")


def cut(array, batch):
    """`batch` None: the file holds the feeds as the model takes them (edgeopt wrote them so)."""
    return array if batch is None else array[:batch]


class Onnx:
    def __init__(self, spec):
        import onnxruntime as ort

        self.import_rss_mb = current_rss_mb()
        config = spec.get("runtime_config") or {}
        options = ort.SessionOptions()
        options.log_severity_level = 3
        threads = config.get("intra_op_threads") or spec.get("threads")
        if threads:
            options.intra_op_num_threads = int(threads)
        if config.get("inter_op_threads"):
            options.inter_op_num_threads = int(config["inter_op_threads"])
        options.enable_cpu_mem_arena = bool(config.get("enable_mem_arena", True))
        options.enable_mem_pattern = bool(config.get("enable_mem_pattern", True))
        levels = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
                  "all": "ORT_ENABLE_ALL"}
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel,
                                                   levels[config.get("graph_optimization_level", "all")])
        self.session = ort.InferenceSession(spec["model"], options, providers=["CPUExecutionProvider"])
        self.inputs = [(i.name, i.type) for i in self.session.get_inputs()]
        self.threads = threads
        self.versions = {"onnxruntime": ort.__version__}

    def feeds(self, arrays, batch):
        import numpy as np

        types = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(int32)": np.int32,
                 "tensor(float16)": np.float16, "tensor(uint8)": np.uint8, "tensor(int8)": np.int8}
        return {name: cut(arrays[name], batch).astype(types.get(kind, arrays[name].dtype)) for name, kind in self.inputs}

    def run(self, feeds):
        self.session.run(None, feeds)


class OpenVino:
    def __init__(self, spec):
        import openvino as ov

        self.import_rss_mb = current_rss_mb()
        config = spec.get("runtime_config") or {}
        options = {"PERFORMANCE_HINT": {"throughput": "THROUGHPUT"}.get(config.get("performance_hint"), "LATENCY")}
        threads = config.get("inference_num_threads") or spec.get("threads")
        if threads:
            options["INFERENCE_NUM_THREADS"] = int(threads)
        if config.get("inference_precision"):
            options["INFERENCE_PRECISION_HINT"] = config["inference_precision"]
        self.compiled = ov.Core().compile_model(spec["model"], "CPU", options)
        self.request = self.compiled.create_infer_request()
        self.threads = self.compiled.get_property("INFERENCE_NUM_THREADS")
        self.versions = {"openvino": ov.__version__.split("-")[0]}

    def feeds(self, arrays, batch):
        return {p.get_any_name(): cut(arrays[p.get_any_name()], batch).astype(p.get_element_type().to_dtype())
                for p in self.compiled.inputs}

    def run(self, feeds):
        self.request.infer(feeds)


def open_session(spec):
    import numpy as np

    runtime = {"onnxruntime": Onnx, "openvino": OpenVino}[spec["framework"]]
    started = time.perf_counter()
    session = runtime(spec)
    with np.load(spec["data"]) as data:
        arrays = {k: data[k] for k in data.files if k != "__labels__"}
    return session, session.feeds(arrays, spec["batch_size"]), time.perf_counter() - started


def window(session, feeds, request):
    for _ in range(request["warmup_runs"]):
        session.run(feeds)
    samples = []
    wall0, cpu0, started = time.perf_counter(), time.process_time(), time.time()
    end = wall0 + request["time_budget_s"]
    while len(samples) < request["max_runs"] and (len(samples) < request["min_runs"] or time.perf_counter() < end):
        t0 = time.perf_counter()
        session.run(feeds)
        samples.append((time.perf_counter() - t0) * 1000.0)
    return {"samples_ms": samples, "started": started, "wall_s": time.perf_counter() - wall0,
            "cpu_s": time.process_time() - cpu0, "peak_rss_mb": peak_rss_mb(),
            "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}


def main():
    reply = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything the runtime prints goes to stderr, never into the replies
    session = feeds = None
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        try:
            if request["op"] == "open":
                session, feeds, load_s = open_session(request)
                result = {"versions": session.versions, "load_s": load_s, "threads": session.threads,
                          "runtime_import_rss_mb": session.import_rss_mb, "machine": platform.machine(),
                          "python": platform.python_version()}
            else:
                result = window(session, feeds, request)
            answer = {"status": "ok", "result": result}
        except ImportError as exc:
            framework = request.get("framework", "")
            answer = {"status": "failed", "error": f"the board has no {framework} ({exc})",
                      "install": INSTALL.get(framework, "")}
        except Exception as exc:  # noqa: BLE001 - everything goes back as data
            answer = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
        reply.write(json.dumps(answer) + "\n")
        if answer["status"] != "ok" and session is None:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
