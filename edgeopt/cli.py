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
    build.add_argument("--quiet", action="store_true", help="no progress lines")
    build.add_argument("--json", action="store_true", help="print report.json instead of the summary table")

    plan = commands.add_parser("plan", help="print the plan without running it")
    plan.add_argument("manifest", type=Path)
    plan.add_argument("--target")
    plan.add_argument("--json", action="store_true")

    targets = commands.add_parser("targets", help="list the device catalog, or show one device")
    targets.add_argument("target", nargs="?")
    targets.add_argument("--json", action="store_true")

    commands.add_parser("schema", help="print the manifest's JSON Schema")
    return parser


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
    except Exception as exc:  # noqa: BLE001 - a bug: one line unless asked for more
        if show_traceback:
            traceback.print_exc(file=env.stderr)
        print(f"edgeopt: internal error: {type(exc).__name__}: {exc} (rerun with --traceback)", file=env.stderr)
        return ExitStatus.INTERNAL


def run() -> None:
    sys.exit(int(main()))


def _context(manifest_path: Path, target_name: str | None):
    from edgeopt.catalog import load_catalog
    from edgeopt.gates import load_gate_policies
    from edgeopt.hostinfo import detect_host
    from edgeopt.manifest import load_manifest
    from edgeopt.planner import plan
    from edgeopt.recipes import load_recipes
    from edgeopt.registry import default_registry

    manifest = load_manifest(manifest_path)
    host = detect_host()
    catalog = load_catalog(host=host)
    target = catalog.resolve(target_name or manifest.target)
    registry = default_registry().probed()
    the_plan = plan(manifest, target, load_recipes(), registry, load_gate_policies())
    return manifest, host, registry, the_plan


def _cmd_plan(args, env: Environment) -> ExitStatus:
    from edgeopt.plan_text import render_plan

    _, _, registry, the_plan = _context(args.manifest, args.target)
    if args.json:
        print(the_plan.model_dump_json(indent=2), file=env.stdout)
    else:
        print(render_plan(the_plan, registry), file=env.stdout)
    return ExitStatus.OK


def _cmd_build(args, env: Environment) -> ExitStatus:
    from edgeopt.build import Builder
    from edgeopt.report import build_report, render_summary, write_report
    from edgeopt.telemetry import offline_env

    manifest, host, registry, the_plan = _context(args.manifest, args.target)
    out_dir = args.out or Path(manifest.output.dir or Path(manifest.base_dir) / "out" / the_plan.target.id)

    def progress(line: str) -> None:
        if not args.quiet:
            print(line, file=env.stderr, flush=True)

    progress(f"edgeopt: building {manifest.name} for {the_plan.target.id} with {the_plan.framework} → {out_dir}")
    result = Builder(the_plan, manifest, registry, out_dir.resolve(), offline_env(env.environ), progress).run()
    report = build_report(result, host.cpu_model)
    path = write_report(report, result.out_dir)
    if args.json:
        print(json.dumps(report, indent=2), file=env.stdout)
    else:
        print(render_summary(report), file=env.stdout)
        print(f"report: {path}", file=env.stdout)
    return ExitStatus.OK if result.selected else ExitStatus.GATES_FAILED


def _cmd_targets(args, env: Environment) -> ExitStatus:
    from edgeopt.catalog import load_catalog
    from edgeopt.hostinfo import detect_host

    catalog = load_catalog(host=detect_host())
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


_COMMANDS = {"build": _cmd_build, "plan": _cmd_plan, "targets": _cmd_targets, "schema": _cmd_schema}
