"""Command line: parse arguments, call the core, map outcomes to exit statuses. Nothing else."""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from edgeopt.errors import EdgeoptError, ExitStatus, UsageError


@dataclass
class Environment:
    """What the CLI touches outside itself; tests pass their own (as in httpie's core)."""

    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse exits on its own; we want our exit status and no usage dump
        raise UsageError(f"{message} (see `edgeopt {self.prog.split()[-1]} --help`)" if " " in self.prog else message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="edgeopt", description="Declarative model optimization for edge devices.")
    parser.add_argument("--traceback", action="store_true", help="show the Python traceback on errors")
    commands = parser.add_subparsers(dest="command", parser_class=_Parser, required=True)

    build = commands.add_parser("build", help="plan, optimize, measure, gate and select")
    build.add_argument("manifest", type=Path)
    build.add_argument("--target", help="device id or alias from `edgeopt targets` (default: the manifest's)")
    build.add_argument("--out", type=Path, help="output folder (default: the manifest's output.dir or out/<target>)")
    build.add_argument("--quiet", action="store_true", help="no progress display")
    build.add_argument("--json", action="store_true", help="print report.json instead of the summary table")
    build.add_argument("--executor", default="local",
                       help="where passes and accuracy runs go: local (default), inprocess (no isolation; for "
                       "debugging), ray (a local Ray instance or RAY_ADDRESS), ray:ADDRESS or ray://HOST:PORT; "
                       "latency is always timed here, one window at a time")
    build.add_argument("--jobs", type=int, default=1, help="local executor: passes and accuracy runs at once")
    build.add_argument("--no-cache", action="store_true", help="neither read nor write the build cache")
    build.add_argument("--remeasure", action="store_true", help="reuse cached models but measure every candidate again")
    build.add_argument("--cache-dir", type=Path, help="default: $EDGEOPT_CACHE_DIR or ~/.cache/edgeopt")
    build.add_argument("--package", action="store_true", help="also write the selected model's deployable archive")
    build.add_argument("--no-hooks", action="store_true",
                       help="refuse a manifest that names Python code to run (data hooks, decode); also "
                       "EDGEOPT_NO_HOOKS=1: for CI jobs that build untrusted pull requests")
    build.add_argument("--device", metavar="ssh://USER@HOST[:PORT]",
                       help="time every candidate on the board itself, with its own Python and runtime (options: "
                       "?python=PATH&key=PATH&known_hosts=PATH); latency and peak RSS are then measured-device")
    _add_search_options(build)
    _add_gate_options(build, with_ci_flag=True)

    gate = commands.add_parser("gate", help="gate an existing report.json: compact verdict, JUnit, Markdown")
    gate.add_argument("report", type=Path, help="report.json, or the build folder holding it")
    _add_gate_options(gate, with_ci_flag=False)

    package = commands.add_parser("package", help="write a deployable archive of a build's selected model")
    package.add_argument("build_dir", type=Path)
    package.add_argument("--candidate", help="package this candidate instead of the selected one")
    package.add_argument("--out", type=Path, help="folder for the archive (default: BUILD_DIR/package)")

    verify = commands.add_parser("verify", help="check an archive's checksums and run its model on one input")
    verify.add_argument("archive", type=Path)
    verify.add_argument("--arch", choices=["host", "aarch64"], default="host",
                        help="aarch64: run the example with the runtime's ARM build under emulation, as the package's "
                        "target core (needs `edgeopt env create aarch64`)")

    plan = commands.add_parser("plan", help="print the plan without running it")
    plan.add_argument("manifest", type=Path)
    plan.add_argument("--target")
    plan.add_argument("--device", help="as for build: the plan says which figures the board will give")
    plan.add_argument("--no-hooks", action="store_true", help="as for build")
    _add_search_options(plan)
    plan.add_argument("--json", action="store_true")

    targets = commands.add_parser("targets", help="list the device catalog, or show one device")
    targets.add_argument("target", nargs="?")
    targets.add_argument("--json", action="store_true")
    targets.add_argument("--calibration", action="store_true",
                         help="the published measurements the latency estimators are fitted on: each point, its "
                         "leave-one-out estimate and the error (for one target, or all)")

    commands.add_parser("schema", help="print the manifest's JSON Schema")

    init = commands.add_parser("init", help="write a manifest to start from, from what an ONNX model declares")
    init.add_argument("model", type=Path)
    init.add_argument("--out", type=Path, default=Path("manifest.yaml"), help="default: ./manifest.yaml")
    init.add_argument("--force", action="store_true", help="overwrite --out if it exists")

    env = commands.add_parser("env", help="environments edgeopt runs parts of a build in (aarch64 emulation, llama.cpp's converter, "
                                 "rknn-toolkit2, Olive)")
    env_commands = env.add_subparsers(dest="env_command", parser_class=_Parser, required=True)
    create = env_commands.add_parser("create", help="make an environment (aarch64: arm64 userland, runtimes, plugin; llama.cpp: its HF → "
                                     "GGUF converter; rknn, olive: a venv with rknn-toolkit2 / olive-ai and its pins)")
    create.add_argument("name")
    create.add_argument("--force", action="store_true", help="make it again even if it is there")
    env_commands.add_parser("list", help="the environments and their state")
    cache = commands.add_parser("cache", help="the build cache: its size, least-recently-used eviction, removal")
    cache.add_argument("--cache-dir", type=Path, help="default: $EDGEOPT_CACHE_DIR or ~/.cache/edgeopt")
    cache_commands = cache.add_subparsers(dest="cache_command", parser_class=_Parser, required=True)
    cache_commands.add_parser("info", help="entries and bytes, in all and per kind").add_argument(
        "--json", action="store_true")
    cache_commands.add_parser("prune", help="evict least recently used entries down to a size").add_argument(
        "--max-size", required=True, help="e.g. 5G, 500M, 1.5GiB")
    cache_commands.add_parser("clear", help="remove every entry")
    remove = env_commands.add_parser("remove", help="delete an environment")
    remove.add_argument("name")
    return parser


def _add_search_options(parser) -> None:
    """The manifest's search: section, narrowed for this run (a quick look on a slow machine, a CI smoke build)."""
    parser.add_argument("--search", choices=["exhaustive", "cheap-first"], dest="strategy",
                        help="search strategy (default: the manifest's search.strategy)")
    parser.add_argument("--max-candidates", type=int, metavar="N",
                        help="evaluate at most N candidates, in the plan's order (default: the manifest's)")
    parser.add_argument("--frameworks", metavar="NAME[,NAME]",
                        help="search only these frameworks (default: the manifest's search.frameworks, or every "
                        "installed one that fits the target)")
    parser.add_argument("--only", metavar="STEP[,STEP]",
                        help="evaluate only these steps (ids from `edgeopt plan`) and the steps they read from; "
                        "the baseline always runs (default: the manifest's search.only, or every step)")


def _search_overrides(args):
    from edgeopt.api import SearchOverrides

    return SearchOverrides(strategy=args.strategy, max_candidates=args.max_candidates,
                           frameworks=_names(args.frameworks), only=_names(args.only))


def _names(listed: str | None) -> tuple[str, ...] | None:
    """A comma-separated option's names; None when the option was not given."""
    return tuple(name.strip() for name in listed.split(",") if name.strip()) if listed else None


def _add_gate_options(parser, with_ci_flag: bool) -> None:
    if with_ci_flag:
        parser.add_argument("--ci", action="store_true",
                            help="CI mode: compact verdict, JUnit XML and Markdown summary; exit status = gates")
    parser.add_argument("--against", type=Path, help="a previous report.json: fail on regressions beyond --tolerance")
    parser.add_argument("--tolerance", type=float, default=0.05, help="allowed relative regression (default 0.05)")
    parser.add_argument("--junit", type=Path, help="JUnit XML path (default: BUILD_DIR/junit.xml)")
    parser.add_argument("--summary", type=Path, help="Markdown summary path (default: BUILD_DIR/summary.md; "
                        "also appended to $GITHUB_STEP_SUMMARY when set)")


def main(argv: list[str] | None = None, env: Environment | None = None) -> ExitStatus:
    env = env or Environment()
    argv = list(sys.argv[1:] if argv is None else argv)
    show_traceback = "--traceback" in argv
    try:
        args = _parser().parse_args(argv)
        return _COMMANDS[args.command](args, env)
    except EdgeoptError as exc:
        if show_traceback:
            traceback.print_exc(file=env.stderr)
        print(f"edgeopt: error: {exc}", file=env.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        print("edgeopt: interrupted", file=env.stderr)
        return ExitStatus.INTERNAL
    except BrokenPipeError:  # `edgeopt plan M | head`: the reader left; not an error of edgeopt's
        _silence_stdout()
        return ExitStatus.OK
    except Exception as exc:  # noqa: BLE001 - a bug: one line unless asked for more
        if show_traceback:
            traceback.print_exc(file=env.stderr)
        print(f"edgeopt: internal error: {type(exc).__name__}: {exc} (rerun with --traceback)", file=env.stderr)
        return ExitStatus.INTERNAL


def _silence_stdout() -> None:
    """Python flushes stdout again at exit, into the same closed pipe: point it at /dev/null first."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real stdout (tests pass their own streams)
        pass


def run() -> None:
    status = main()
    try:  # what is still buffered goes out now, where a reader that left can be told apart from a bug
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
    sys.exit(int(status))


def _cmd_plan(args, env: Environment) -> ExitStatus:
    from edgeopt import api
    from edgeopt.plan_text import render_plan

    context = api.plan(args.manifest, args.target, args.device, no_hooks=args.no_hooks, environ=env.environ,
                       search=_search_overrides(args))
    if args.json:
        print(context.plan.model_dump_json(indent=2), file=env.stdout)
    else:
        print(render_plan(context.plan, context.registry, context.environments), file=env.stdout)
    return ExitStatus.OK


def _cmd_build(args, env: Environment) -> ExitStatus:
    from edgeopt import api
    from edgeopt.progress import make_progress
    from edgeopt.report import render_summary

    progress = make_progress(env.stderr, quiet=args.quiet or args.json or args.ci)
    options = api.BuildOptions(target=args.target, out=args.out, executor=args.executor, jobs=args.jobs,
                               cache_dir=args.cache_dir, no_cache=args.no_cache, remeasure=args.remeasure,
                               package=args.package, device=args.device, no_hooks=args.no_hooks,
                               search=_search_overrides(args), progress=progress,
                               environ=env.environ)
    try:
        outcome = api.build(args.manifest, options)
    finally:
        progress.close()
    if args.ci or args.against or args.junit or args.summary:
        return _gate(outcome.report, outcome.out_dir, args, env)
    if args.json:
        print(outcome.report.model_dump_json(indent=2), file=env.stdout)
    else:
        print(render_summary(outcome.report), file=env.stdout)
        print(f"report: {outcome.report_path}\nhtml report: {outcome.html_path}", file=env.stdout)
        if outcome.archive:
            print(f"package: {outcome.archive}", file=env.stdout)
        elif args.package:
            print("package: not written, no candidate passed every gate "
                  f"(`edgeopt package {outcome.out_dir} --candidate ID` packages one anyway)", file=env.stdout)
    return ExitStatus.OK if outcome.passed else ExitStatus.GATES_FAILED


def _gate(report, out_dir: Path, args, env: Environment) -> ExitStatus:
    from edgeopt.ci_gate import gate_report, write_gate_outputs
    from edgeopt.report import load_report

    previous = load_report(args.against) if args.against else None
    verdict = gate_report(report, previous, args.tolerance)
    junit, summary = write_gate_outputs(verdict, out_dir, args.junit, args.summary, env.environ)
    print(verdict.compact(), file=env.stdout)
    print(f"junit: {junit}\nsummary: {summary}", file=env.stdout)
    return ExitStatus.OK if verdict.passed else ExitStatus.GATES_FAILED


def _cmd_gate(args, env: Environment) -> ExitStatus:
    from edgeopt.report import load_report

    path = args.report / "report.json" if args.report.is_dir() else args.report
    return _gate(load_report(path), path.parent, args, env)


def _cmd_package(args, env: Environment) -> ExitStatus:
    from edgeopt import api

    print(api.package(args.build_dir, candidate=args.candidate, out=args.out), file=env.stdout)
    return ExitStatus.OK


def _cmd_verify(args, env: Environment) -> ExitStatus:
    from edgeopt.package import emulated_python, host_python, verify_package
    from edgeopt.registry import default_registry

    python = emulated_python(args.archive, env.environ) if args.arch == "aarch64" \
        else host_python(args.archive, default_registry(), env.environ)
    if args.arch == "aarch64":
        print(f"runtime: the runtime's aarch64 build under qemu-user ({Path(python).name})", file=env.stdout)
    for line in verify_package(args.archive, python=python):
        print(line, file=env.stdout)
    return ExitStatus.OK


def _cmd_init(args, env: Environment) -> ExitStatus:
    from edgeopt.starter import starter_manifest

    if args.out.exists() and not args.force:
        raise UsageError(f"{args.out} exists; pass --force to overwrite it, or --out for another file")
    text = starter_manifest(args.model, args.out.parent)
    args.out.write_text(text)
    print(f"wrote {args.out}: fill in evaluation.data (its TODO says which arrays), then "
          f"`edgeopt plan {args.out}` and `edgeopt build {args.out}`", file=env.stdout)
    return ExitStatus.OK


def _cmd_targets(args, env: Environment) -> ExitStatus:
    from edgeopt.catalog import load_catalog
    from edgeopt.hostinfo import detect_host

    catalog = load_catalog(host=detect_host())
    if args.calibration:
        from edgeopt.estimate.calibration import load_calibration, render

        target_id = catalog.resolve(args.target).id if args.target else None
        print(render(load_calibration(catalog), target_id), file=env.stdout)
        return ExitStatus.OK
    if args.target:
        target = catalog.resolve(args.target)
        if args.json:
            print(target.model_dump_json(indent=2), file=env.stdout)
        else:
            from edgeopt.plan_text import render_target

            print(render_target(target), file=env.stdout)
        return ExitStatus.OK
    if args.json:
        print(json.dumps([t.model_dump(mode="json") for t in catalog.targets], indent=2), file=env.stdout)
        return ExitStatus.OK
    width = max(len(t.id) for t in catalog.targets)
    for t in catalog.targets:
        print(f"{t.id.ljust(width)}  {t.arch:8}  {' → '.join(t.frameworks.chain):34}  {t.name}"
              + (f"  (aliases: {', '.join(t.aliases)})" if t.aliases else ""), file=env.stdout)
    return ExitStatus.OK


def _cmd_schema(args, env: Environment) -> ExitStatus:
    from edgeopt.manifest import manifest_schema

    print(manifest_schema(), file=env.stdout)
    return ExitStatus.OK


def _cmd_env(args, env: Environment) -> ExitStatus:
    from edgeopt.envs import ENV_NAMES, environment

    if args.env_command == "create":
        status = environment(args.name, env.environ).create(lambda line: print(line, file=env.stderr, flush=True),
                                                            force=args.force)
        print(f"{status.name}: {status.detail} ({status.path})", file=env.stdout)
    elif args.env_command == "list":
        for name in ENV_NAMES:
            status = environment(name, env.environ).status()
            print(f"{name}: {'ready' if status.present else 'missing'} — {status.detail} ({status.path})", file=env.stdout)
    else:
        removed = environment(args.name, env.environ).remove()
        print(f"{args.name}: {'removed' if removed else 'was not there'}", file=env.stdout)
    return ExitStatus.OK


def _cmd_cache(args, env: Environment) -> ExitStatus:
    from edgeopt.cache import cache_info, clear, default_cache_dir, format_size, parse_size, prune

    root = args.cache_dir or default_cache_dir(env.environ)
    if args.cache_command == "info":
        info = cache_info(root)
        if args.json:
            print(json.dumps(info, indent=2), file=env.stdout)
            return ExitStatus.OK
        print(f"{info['dir']}: {info['entries']} entries, {format_size(info['bytes'])}", file=env.stdout)
        for kind, figures in info["by_kind"].items():
            print(f"  {kind}: {figures['entries']} entries, {format_size(figures['bytes'])}", file=env.stdout)
        if info["leftovers"]:
            print(f"  {info['leftovers']} leftover(s) of interrupted writes (`edgeopt cache prune` removes them)",
                  file=env.stdout)
    elif args.cache_command == "prune":
        done = prune(root, parse_size(args.max_size))
        print(f"{done['dir']}: removed {done['removed']} entries ({format_size(done['freed_bytes'])}); "
              f"{done['entries']} left, {format_size(done['bytes'])}", file=env.stdout)
    else:
        done = clear(root)
        print(f"{done['dir']}: removed {done['removed']} entries ({format_size(done['freed_bytes'])})", file=env.stdout)
    return ExitStatus.OK


_COMMANDS = {"build": _cmd_build, "plan": _cmd_plan, "targets": _cmd_targets, "schema": _cmd_schema,
             "gate": _cmd_gate, "package": _cmd_package, "verify": _cmd_verify, "env": _cmd_env,
             "cache": _cmd_cache, "init": _cmd_init}
