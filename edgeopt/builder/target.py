"""Figures for the device a build targets, when it is not this host: each ONNX Runtime / OpenVINO candidate
runs in the target's runtime build under aarch64 emulation, on a few evaluation samples (its outputs
against the host's: simulated accuracy) and for a few single-thread inferences under an instruction
counter (turned into an estimated latency by the target core's model)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from edgeopt.artifact import ModelArtifact
from edgeopt.builder.data import BuildData
from edgeopt.builder.keys import CacheKeys
from edgeopt.builder.layout import OutputLayout
from edgeopt.builder.measurer import Item
from edgeopt.builder.requests import Requests
from edgeopt.cache import BuildCache, make_key
from edgeopt.catalog import Target
from edgeopt.datafiles import load_samples, save_arrays
from edgeopt.estimate.cores import CoreProfile, main_cluster
from edgeopt.estimate.counts import Counts, CountsMissing, plugin_arguments, read_counts
from edgeopt.estimate.cpu import CpuModel
from edgeopt.estimate.marks import FIRST_MARK
from edgeopt.frameworks.base import GraphRuntime
from edgeopt.hashing import path_digest
from edgeopt.planner import Emulation
from edgeopt.progress import BuildProgress
from edgeopt.protocol import EmulateRequest, EmulateResult, ScoreRequest, ScoreResult
from edgeopt.runners import Job, Runner


@dataclass(frozen=True)
class EmulationSetup:
    """What emulating the target needs from outside the build: the environment, the core, a runner whose
    interpreter is the emulated one."""

    env: object  # edgeopt.envs.Aarch64Env
    core: CoreProfile
    runner: Runner


@dataclass(frozen=True)
class Emulated:
    """One candidate as the target's runtime build ran it (and its outputs judged on the host), or why not."""

    result: EmulateResult | None = None
    score: ScoreResult | None = None
    counts: Counts | None = None
    error: str | None = None
    cached: bool = False


def cpu_model(target: Target, core: CoreProfile, calibration) -> CpuModel:
    cluster = main_cluster(target)
    memory = target.memory
    fitted = calibration.cpu_factors(core) if calibration is not None else None
    return CpuModel(core=core, ghz=cluster.max_ghz or 1.0, cores=cluster.cores,
                    bandwidth_gbps=memory.measured_bandwidth_gbps or memory.bandwidth_gbps,
                    **(fitted or {}))


class TargetEmulator:
    def __init__(self, emulation: Emulation, env, core: CoreProfile, requests: Requests, keys: CacheKeys,
                 cache: BuildCache, runner: Runner, host_runner: Runner, layout: OutputLayout, data: BuildData,
                 progress: BuildProgress):
        self.emulation, self.env, self.core = emulation, env, core
        self.requests, self.keys, self.cache, self.runner = requests, keys, cache, runner
        self.host_runner, self.layout, self.progress = host_runner, layout, progress
        self.env_key = env.status().key
        samples = load_samples(data.eval, limit=emulation.samples)
        self.subset = save_arrays(layout.data / "eval-emulated.npz", samples.arrays, samples.labels, samples.layout)
        self.subset_digest = f"{data.digests['eval']}:{emulation.samples}"
        self.count = samples.count
        self._reference: Path | None = None  # the baseline's emulated outputs

    def applies(self, framework: str) -> bool:
        return framework in self.emulation.frameworks

    def run(self, items: list[Item]) -> dict[str, Emulated]:
        """The baseline first: metrics that compare with the baseline read its emulated outputs."""
        results: dict[str, Emulated] = {}
        for group in ([i for i in items if i.baseline], [i for i in items if not i.baseline]):
            emulated = self._emulate([i for i in group if self.applies(i.artifact.framework)])
            results.update(self._score(emulated, {i.id: i for i in group}))
        return results

    def _emulate(self, items: list[Item]) -> dict[str, Emulated]:
        results, jobs = {}, []
        for item in items:
            key = self._key(item)
            folder = self.layout.work(item.id, "emulate")
            cached = self.cache.get_measurement(key, files_to=self._files(folder))
            if cached is not None:
                results[item.id] = self._read(item, EmulateResult.model_validate(cached), folder, cached=True)
                continue
            self.progress.step(item.id, "emulating", f"as a {self.core.uarch} under qemu ({self.count} samples, "
                                                     "instructions counted)")
            jobs.append((item, key, folder, self._job(item, folder)))
        outcomes = self.runner.run_all([job for *_, job in jobs]) if jobs else []
        for (item, key, folder, _), outcome in zip(jobs, outcomes):
            if not outcome.ok:
                results[item.id] = Emulated(error=outcome.error)
                continue
            emulated = self._read(item, EmulateResult.model_validate(outcome.result), folder)
            if emulated.error is None:
                self.cache.put_measurement(key, outcome.result, self._files(folder))
            results[item.id] = emulated
        return results

    @staticmethod
    def _files(folder: Path) -> dict[str, Path]:
        return {"outputs.npy": folder / "outputs.npy", "plugin.log": folder / "plugin.log"}

    def _read(self, item: Item, result: EmulateResult, folder: Path, cached: bool = False) -> Emulated:
        if result.machine != "aarch64":
            return Emulated(error=f"the emulated worker ran as {result.machine}, not aarch64")
        if item.baseline:
            self._reference = folder / "outputs.npy"
        try:
            counts = read_counts(folder / "plugin.log", result.first_mark)
        except CountsMissing as exc:
            return Emulated(result=result, error=str(exc))
        return Emulated(result=result, counts=counts, cached=cached)

    def _score(self, emulated: dict[str, Emulated], items: dict[str, Item]) -> dict[str, Emulated]:
        """The emulated outputs judged by the metric, beside the host's outputs of the same samples."""
        jobs = []
        for record_id, found in emulated.items():
            if found.error is not None:
                continue
            request = self._score_request(items[record_id])
            key = make_key("score", request=request.model_dump(mode="json", exclude={"outputs", "reference_outputs",
                                                                                     "host_outputs",
                                                                                     "host_reference_outputs"}),
                           files=[path_digest(Path(p)) for p in (request.outputs, request.reference_outputs,
                                                                 request.host_outputs, request.host_reference_outputs)
                                  if p], hooks=self.keys.hooks())
            cached = self.cache.get_measurement(key)
            if cached is not None:
                emulated[record_id] = replace(found, score=ScoreResult.model_validate(cached))
                continue
            folder = self.layout.work(record_id, "score")
            jobs.append((record_id, key, Job(request, str(folder), self.requests.limits)))
        outcomes = self.host_runner.run_all([job for *_, job in jobs]) if jobs else []
        for (record_id, key, _), outcome in zip(jobs, outcomes):
            if outcome.ok:
                self.cache.put_measurement(key, outcome.result)
                emulated[record_id] = replace(emulated[record_id], score=ScoreResult.model_validate(outcome.result))
            else:
                emulated[record_id] = replace(emulated[record_id], error=f"scoring the emulated outputs: {outcome.error}")
        return emulated

    def _score_request(self, item: Item) -> ScoreRequest:
        folder = self.layout.work(item.id, "emulate")
        host_subset = folder / "host-outputs.npy"
        np.save(host_subset, np.load(self.layout.outputs(item.id))[: self.count])
        reference = host_reference = None
        if self.requests.metric.needs_reference and not item.baseline:
            reference = self._reference
            host_reference = folder / "host-reference.npy"
            np.save(host_reference, np.load(self.layout.reference_outputs)[: self.count])
        return ScoreRequest(adapter=self.requests.registry.entry(item.artifact.framework).module,
                            eval_data=str(self.subset), metric=self.requests.metric_request,
                            outputs=str(folder / "outputs.npy"), reference_outputs=str(reference) if reference else None,
                            host_outputs=str(host_subset),
                            host_reference_outputs=str(host_reference) if host_reference else None,
                            import_paths=(self.requests.manifest.base_dir,))

    def _job(self, item: Item, folder: Path) -> Job:
        folder.mkdir(parents=True, exist_ok=True)
        request = EmulateRequest(
            adapter=self.requests.registry.entry(item.artifact.framework).module, artifact=item.artifact,
            eval_data=str(self.subset), eval_batch_size=self.requests.manifest.evaluation.batch_size,
            output=self.requests.manifest.evaluation.metric.output, save_outputs=str(folder / "outputs.npy"),
            timing_data=str(self.requests.data.timing), batch_size=self.requests.manifest.measure.batch_size,
            counted_runs=3)
        qemu = plugin_arguments(self.env.plugin(), folder / "plugin.log", FIRST_MARK)
        limits = self.requests.limits
        # emulation runs ~100-300x slower than native: a hang is told apart by CPU progress, not wall time
        limits = type(limits)(timeout_s=limits.timeout_s * 4, stall_s=limits.stall_s,
                              memory_limit_mb=limits.memory_limit_mb)
        return Job(request, str(folder), limits, environment=(("EDGEOPT_QEMU_ARGS", qemu),))

    def _key(self, item: Item) -> str:
        # what runs under emulation: the model on one thread, so candidates differing only in threads share it
        runtime = self.requests.registry.adapter(item.artifact.framework).runtime
        return make_key("emulate", model=self.keys.model_key(runtime.with_threads(item.artifact, 1)),
                        subset=self.subset_digest,
                        env=self.env_key, core=self.core.model_dump(mode="json"),
                        output=self.requests.manifest.evaluation.metric.output,
                        batch=self.requests.manifest.evaluation.batch_size)


RUNTIME_FAMILY = {"gguf": "llama.cpp"}  # the calibration's runtime names, where a framework's differs


class RooflineEstimator:
    """Latency on the target from its published peaks, for candidates without a core model or emulation:
    language-model decode from the bytes each token reads, graph models node by node from their MACs and
    bytes; times the efficiency fitted for the class on published points (its leave-one-out error is the
    band)."""

    def __init__(self, target: Target, calibration, data: BuildData, baseline_onnx: Callable[[], ModelArtifact | None]):
        self.target, self.calibration = target, calibration
        self._timing_data = data.timing  # arrays for graph models; a language model's is its text file
        self._timing_shapes: dict | None = None
        self._baseline_onnx = baseline_onnx
        self._costs: dict[str, object] = {}

    def figure(self, artifact: ModelArtifact, runtime, llm: bool):
        from edgeopt.estimate.roofline import NoPeak, decode_roofline, graph_roofline
        from edgeopt.measurements import Figure

        try:
            if llm:
                engine, precision = "llm-decode", artifact.precision
                roofline = decode_roofline(self.target, runtime.size_bytes(artifact))
                work = f"{runtime.size_bytes(artifact) / 1e9:.2f} GB of weights read per token"
            else:
                cost = self._cost(artifact, runtime.engine)
                if cost is None:
                    return None
                engine, precision = runtime.engine, artifact.precision
                threads = runtime.threads_on(artifact, self.target.cores) if isinstance(runtime, GraphRuntime) else None
                roofline = graph_roofline(self.target, engine, cost, threads)
                on = f"{threads} thread(s)" if engine == "cpu" else f"the {engine}"
                work = (f"{cost.macs / 1e6:.1f} MMAC ({', '.join(f'{k} {v / 1e6:.1f}' for k, v in cost.macs_by_precision().items())}) "
                        f"and {cost.bytes / 1e6:.1f} MB moved over {len(cost.nodes)} nodes, on {on}")
        except NoPeak:
            return None  # the catalog has no peak for this engine here: no estimate, said in the report
        family = RUNTIME_FAMILY.get(artifact.framework, artifact.framework)
        fitted = self.calibration.efficiency(engine, family, precision) if self.calibration else None
        efficiency = fitted.value if fitted else 0.25
        value = roofline.ideal_ms / efficiency
        band = (value * (1 - fitted.error), value * (1 + fitted.error)) if fitted and fitted.error is not None else None
        basis = (f"efficiency {efficiency:.2f} fitted on {fitted.basis}, ±{fitted.error:.0%} leave-one-out"
                 if fitted and fitted.error is not None else f"efficiency {efficiency:.2f} " +
                 (f"from {fitted.basis}" if fitted else "assumed: no published point for this class (uncalibrated)"))
        source = f"roofline on {self.target.id}'s published peaks: {work}; {basis}"
        if not llm:
            source += self._extrapolated(engine, cost.macs)
        return Figure(value=value, unit="ms", provenance="estimated", source=source, interval=band)

    def _extrapolated(self, engine: str, macs: float) -> str:
        """Said when the model is far outside the sizes of the published points its efficiency was fitted on: the
        leave-one-out band does not cover that (a tiny model on an NPU is dominated by per-layer costs)."""
        sizes = [p.gmacs * 1e9 for p in (self.calibration.fitted if self.calibration else [])
                 if p.engine == engine and p.gmacs]
        if not sizes or min(sizes) / 10 <= macs <= max(sizes) * 10:
            return ""
        return (f"; EXTRAPOLATED: {macs / 1e6:.1f} MMAC is far outside the published points' "
                f"{min(sizes) / 1e9:.2f}–{max(sizes) / 1e9:.2f} GMAC, so the band above does not hold")

    def timing_shapes(self) -> dict:
        """The shapes the graph's cost is computed at: the timed batch's, read when a graph is first costed."""
        if self._timing_shapes is None:
            timed = load_samples(self._timing_data)  # holds the timed batch only
            self._timing_shapes = {k: v.shape for k, v in timed.feed(0, timed.count).items()}
        return self._timing_shapes

    def _cost(self, artifact: ModelArtifact, engine: str = "cpu"):
        """The graph's cost; an OpenVINO IR or an .rknn is costed by the ONNX model it was converted from (an NPU
        computes in the precision it was built for: fp32 layers run in fp16 there; a hybrid int8 model is costed
        as int8 throughout, so its few fp16 layers are estimated a little fast)."""
        from edgeopt.estimate.graph import onnx_cost

        onnx_artifact = artifact if artifact.format == "onnx" else self._baseline_onnx()
        if onnx_artifact is None or onnx_artifact.format != "onnx":
            return None
        key = onnx_artifact.path
        if key not in self._costs:
            try:
                self._costs[key] = onnx_cost(onnx_artifact.path, self.timing_shapes())
            except Exception:  # noqa: BLE001 - a graph shape inference cannot follow: no roofline, said so
                self._costs[key] = None
        cost = self._costs[key]
        if cost is None or artifact.format == "onnx":
            return cost
        group = "int8" if "int8" in artifact.precision and "weights" not in artifact.precision else None
        if group is None and engine == "npu":
            group = "fp16"
        if group is None:
            return cost
        from edgeopt.estimate.graph import GraphCost

        # an NPU also moves its tensors at the precision it computes in (the float graph's bytes are fp32's)
        scale = {"int8": 0.25, "fp16": 0.5}[group] if engine == "npu" else 1.0
        return GraphCost(tuple(n.__class__(n.op, n.macs, n.elements, int(n.bytes * scale), group if n.macs else n.precision)
                               for n in cost.nodes))
