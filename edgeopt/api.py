"""edgeopt as a Python API: plan a manifest for a target, build it, package the result.

    from edgeopt import api
    context = api.plan("examples/minilm/manifest.yaml", target="rk3566")
    outcome = api.build("examples/minilm/manifest.yaml", api.BuildOptions(target="rk3566"))
    outcome.report.selected, outcome.report_path

The CLI is a thin layer over these functions: it parses arguments and maps outcomes to exit statuses.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from edgeopt.envs.base import EnvStatus
from edgeopt.errors import UsageError
from edgeopt.hostinfo import HostFacts
from edgeopt.manifest import Manifest
from edgeopt.planner import Plan
from edgeopt.progress import BuildProgress
from edgeopt.registry import Registry
from edgeopt.report import Report


@dataclass(frozen=True)
class PlanContext:
    manifest: Manifest
    host: HostFacts
    registry: Registry
    plan: Plan
    environments: Mapping[str, EnvStatus] = field(default_factory=dict)  # those the plan's steps use, as they are


@dataclass(frozen=True)
class SearchOverrides:
    """The manifest's search, narrowed for one run from the command line (a quick look on a slow machine, a CI
    smoke build): each field set replaces the manifest's."""

    strategy: str | None = None  # exhaustive | cheap-first
    max_candidates: int | None = None
    frameworks: tuple[str, ...] | None = None
    only: tuple[str, ...] | None = None  # step ids

    def applied_to(self, manifest: Manifest) -> Manifest:
        from pydantic import ValidationError

        from edgeopt.manifest import SearchSpec

        # the tuples become SearchSpec's lists as it validates them
        given = {"strategy": self.strategy, "max_candidates": self.max_candidates, "frameworks": self.frameworks,
                 "only": self.only}
        changes = {key: value for key, value in given.items() if value is not None}
        if not changes:
            return manifest
        try:
            search = SearchSpec.model_validate({**manifest.search.model_dump(), **changes})
        except ValidationError as error:
            problem = error.errors()[0]
            raise UsageError(f"--{str(problem['loc'][0]).replace('_', '-')}: {problem['msg']}") from None
        return manifest.model_copy(update={"search": search})


def plan(manifest_path: str | Path, target: str | None = None, device: str | None = None, no_hooks: bool = False,
         environ: Mapping[str, str] | None = None, search: SearchOverrides = SearchOverrides()) -> PlanContext:
    """Load and validate the manifest, resolve the target, probe the frameworks, and plan. Runs nothing
    (with no_hooks or EDGEOPT_NO_HOOKS=1, a manifest that names Python code to run is refused first)."""
    from edgeopt.catalog import load_catalog
    from edgeopt.estimate.cores import load_cores
    from edgeopt.gates import load_gate_policies
    from edgeopt.hostinfo import detect_host
    from edgeopt.manifest import load_manifest
    from edgeopt.planner import plan as make_plan
    from edgeopt.recipes import load_recipes
    from edgeopt.registry import default_registry
    from edgeopt.trust import hooks_forbidden, refuse_hooks

    manifest = search.applied_to(load_manifest(Path(manifest_path)))
    if hooks_forbidden(environ if environ is not None else os.environ, no_hooks):
        refuse_hooks(manifest, str(manifest_path))
    host = detect_host()
    resolved = load_catalog(host=host).resolve(target or manifest.target)
    _check_model_path(manifest, str(manifest_path))
    source_quantized = _source_quantized(manifest)
    registry = default_registry().probed(environ)
    if device:
        from edgeopt.device import Device

        device = Device.parse(device).display
    the_plan = make_plan(manifest, resolved, load_recipes(), registry, load_gate_policies(), load_cores(), device,
                         source_quantized)
    return PlanContext(manifest, host, registry, the_plan,
                       environment_states(the_plan, environ if environ is not None else os.environ))


def environment_states(the_plan: Plan, environ: Mapping[str, str]) -> dict[str, EnvStatus]:
    """The state of each environment a step runs code from: the plan shows it, and each one's key goes into
    the cache keys of the steps that use it (a converter set up later must not be served an older file)."""
    from edgeopt.envs import environment

    names = sorted({name for step in the_plan.steps for name in step.environments})
    return {name: environment(name, environ).status() for name in names}


def backend_interpreters(the_plan: Plan, states: Mapping[str, EnvStatus], environ: Mapping[str, str]) -> dict[str, str]:
    """The worker interpreter of each backend environment a step runs in (and the models it makes are measured in),
    where it is made: `states` are environment_states' (a missing one is in the plan's `missing`, and the build
    stops on it before any work)."""
    from edgeopt.envs import environment

    names = sorted({step.runs_in for step in the_plan.steps if step.runs_in})
    return {name: environment(name, environ).python() for name in names if states[name].present}


def _source_quantized(manifest: Manifest) -> str | None:
    """An ONNX source that arrives quantized is planned without the passes that need a float graph. Read
    after the file's checks (it is parsed here for the first time); without onnx installed nothing is read
    (no ONNX framework can run then either, and the plan says how to install one)."""
    if manifest.model.format != "onnx":
        return None
    try:
        import onnx  # noqa: F401
    except ImportError:
        return None
    from edgeopt.manifest import resolve_path
    from edgeopt.model_checks import check_onnx
    from edgeopt.quantized import quantized_form

    path = resolve_path(manifest.model.path)
    return quantized_form(check_onnx(path))


def _check_model_path(manifest: Manifest, file: str) -> None:
    """A model (or a label file) that is not there is said at plan time, before any data is prepared."""
    from edgeopt.errors import ManifestError
    from edgeopt.manifest import resolve_path

    path = resolve_path(manifest.model.path)
    if not path.exists():
        raise ManifestError(file, "model.path", f"{path} does not exist")
    labels = manifest.package.labels
    if isinstance(labels, str) and not resolve_path(labels).is_file():  # read only once the build has run
        raise ManifestError(file, "package.labels", f"{resolve_path(labels)} does not exist (a text file, one label "
                            "per line, or a list)")


@dataclass(frozen=True)
class BuildOptions:
    target: str | None = None
    out: Path | None = None
    executor: str = "local"  # local | inprocess | ray | ray:ADDRESS | ray://HOST:PORT
    jobs: int = 1
    cache_dir: Path | None = None  # default: $EDGEOPT_CACHE_DIR or ~/.cache/edgeopt
    no_cache: bool = False
    remeasure: bool = False
    package: bool = False
    no_hooks: bool = False  # refuse manifests that name Python code to run (also EDGEOPT_NO_HOOKS=1)
    device: str | None = None  # ssh://user@host[:port][?python=…&key=…]: time on the board itself
    search: SearchOverrides = SearchOverrides()
    progress: BuildProgress | None = None
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    python: str = sys.executable


@dataclass(frozen=True)
class BuildOutcome:
    report: Report
    out_dir: Path
    report_path: Path
    html_path: Path
    archive: Path | None = None

    @property
    def passed(self) -> bool:
        return self.report.selected is not None


def build(manifest_path: str | Path, options: BuildOptions = BuildOptions()) -> BuildOutcome:
    """Plan, search, measure, gate and select; write report.json, report.html and, when asked and a
    candidate passed every gate, the package of the selected model."""
    from edgeopt.builder import Builder
    from edgeopt.cache import BuildCache, cache_max_bytes, default_cache_dir
    from edgeopt.package import deployment_notes, write_package
    from edgeopt.preprocessing import collect_preprocessing
    from edgeopt.progress import NoProgress
    from edgeopt.report import build_report, write_report
    from edgeopt.report_html import write_html_report
    from edgeopt.runners import make_runner
    from edgeopt.telemetry import offline_env

    if options.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    context = plan(manifest_path, options.target, options.device, options.no_hooks, options.environ, options.search)
    manifest, the_plan = context.manifest, context.plan
    out_dir = (options.out or Path(manifest.output.dir or Path(manifest.base_dir) / "out" / the_plan.target.id)).resolve()
    cache = BuildCache(None if options.no_cache else (options.cache_dir or default_cache_dir(options.environ)),
                       read_measurements=not options.remeasure, max_bytes=cache_max_bytes(options.environ))
    worker_env = offline_env(options.environ)
    progress = options.progress or NoProgress()
    progress.message(f"edgeopt: building {manifest.name} for {the_plan.target.id} with "
                     f"{', '.join(the_plan.frameworks)} → {out_dir}")
    emulation = _emulation(the_plan, options, worker_env)  # before any work: a missing environment is exit 4
    runner = make_runner(options.executor, worker_env, options.python, options.jobs)
    timing_runner = runner if options.executor == "inprocess" else make_runner("local", worker_env, options.python)
    if options.device:
        from edgeopt.device import Device, DeviceRunner

        timing_runner = DeviceRunner(Device.parse(options.device))
    try:
        env_keys = {name: status.key if status.present else None for name, status in context.environments.items()}
        result = Builder(the_plan, manifest, context.registry, out_dir, runner, timing_runner, progress, cache,
                         emulation, _calibration(the_plan), env_keys,
                         backend_interpreters(the_plan, context.environments, options.environ)).run()
    finally:
        runner.close()
    report = build_report(result, context.host.cpu_model, deployment_notes(manifest),
                          collect_preprocessing(manifest, result.out_dir))
    report_path = write_report(report, result.out_dir)
    html_path = write_html_report(report, result.out_dir)
    if result.baseline.status != "ok":
        from edgeopt.errors import BaselineFailed

        raise BaselineFailed(f"the baseline (the source model as given, run by {the_plan.baseline_framework}) could "
                             f"not be measured, so no candidate was: {result.baseline.error} — fix the model, its "
                             f"data or the environment (details: {report_path})")
    archive = None
    if options.package and result.selected:
        archive = write_package(report, result.out_dir, context.registry, artifact=result.artifacts[result.selected.id])
    return BuildOutcome(report, result.out_dir, report_path, html_path, archive)


def _calibration(the_plan: Plan):
    """The published measurements target estimates are fitted on, for builds whose target is not this host."""
    if the_plan.target_evaluation is None:
        return None
    from edgeopt.catalog import load_catalog
    from edgeopt.estimate.calibration import load_calibration

    return load_calibration(load_catalog())


def _emulation(the_plan: Plan, options: BuildOptions, worker_env):
    """The emulated runner when the plan runs candidates as the target's runtime build."""
    evaluation = the_plan.target_evaluation
    if evaluation is None or evaluation.emulation is None:
        return None
    from edgeopt.builder.target import EmulationSetup
    from edgeopt.envs import environment
    from edgeopt.estimate.cores import load_cores
    from edgeopt.runners.child import SubprocessRunner

    env = environment(evaluation.emulation.env, options.environ)
    env.require()
    core = load_cores()[evaluation.emulation.core]
    # emulated jobs are CPU-bound and each is one thread: as many at once as this machine has cores
    jobs = max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    return EmulationSetup(env, core, SubprocessRunner(worker_env, env.python(core), jobs))


def package(build_dir: str | Path, candidate: str | None = None, out: Path | None = None) -> Path:
    """The deployable archive of a finished build's selected (or named) candidate."""
    from edgeopt.package import write_package
    from edgeopt.registry import default_registry
    from edgeopt.report import load_report

    build_dir = Path(build_dir)
    if not (build_dir / "report.json").is_file():
        raise UsageError(f"{build_dir}: no report.json (is it an `edgeopt build` output folder?)")
    return write_package(load_report(build_dir), build_dir, default_registry(), candidate=candidate, out=out)
