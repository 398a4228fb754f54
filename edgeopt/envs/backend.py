"""A backend environment: a Python virtual environment of its own for a toolchain whose pins conflict with the rest
of edgeopt (rknn-toolkit2's numpy 1.26, onnx 1.18, protobuf 4.25, …), made from requirements that ship with edgeopt
(envs/requirements/NAME.txt). edgeopt's worker runs inside it, JSON in and out, like any worker: its interpreter
is a wrapper that puts this edgeopt (the code, not an install) on the path, so the two never drift apart.

A requirement line ending in `# --no-deps` is installed after the others, without its declared dependencies: a
toolchain that declares pins it does not need (rknn-toolkit2 asks for torch <= 2.4, which only a PyTorch source
uses) is installed beside the pins it runs with.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import ClassVar

from edgeopt.envs.base import EnvCreateFailed, Environment, EnvStatus, create_command, run_step, staged

NO_DEPS = "# --no-deps"


def requirements_text(name: str) -> str:
    return (files("edgeopt.envs") / "requirements" / f"{name}.txt").read_text()


def requirement_groups(text: str) -> tuple[list[str], list[str]]:
    """(installed together, installed after with --no-deps): the requirement lines of a requirements file."""
    together, no_deps = [], []
    for line in text.splitlines():
        requirement, _, comment = line.partition("#")
        if requirement.strip():
            (no_deps if comment.strip() == NO_DEPS[2:] else together).append(requirement.strip())
    return together, no_deps


class BackendEnv(Environment):
    """A virtual environment that runs edgeopt's worker with a backend's toolchain."""

    imports: ClassVar[tuple[str, ...]]  # what must import in it for it to count as made (checked by create)
    shown_packages: ClassVar[tuple[str, ...]] = ()  # the versions `env list` and the plan show
    worker_environment: ClassVar[dict[str, str]] = {}  # set for every process of this interpreter (telemetry off)

    def _venv_python(self) -> Path:
        return self.path / "venv" / "bin" / "python"

    def python(self) -> str:
        """A command that runs this environment's Python with this edgeopt importable (the worker's interpreter);
        a PYTHONPATH of the caller's comes after edgeopt's code (the tests' network audit rides on it)."""
        self.require()
        code = self._edgeopt_code()
        script = (f"#!/bin/sh\n# the {self.name} environment's Python with edgeopt's code on the path (written by edgeopt)\n"
                  + "".join(f"{k}={v} " for k, v in sorted(self.worker_environment.items()))
                  + f'PYTHONPATH="{code}${{PYTHONPATH:+:$PYTHONPATH}}" PYTHONNOUSERSITE=1 exec "{self._venv_python()}" "$@"\n')
        return self._wrapper("python", script)

    def status(self) -> EnvStatus:
        info = self._recorded()
        if info is None:
            return self._not_created()
        if info.get("requirements") != requirements_text(self.name):
            return EnvStatus(self.name, self.path, False, f"made from other requirements than this edgeopt ships; run "
                             f"`{create_command(self.name)} --force`", info["packages"], info["key"])
        if not self._venv_python().exists():
            return EnvStatus(self.name, self.path, False, f"its interpreter is gone; run `{create_command(self.name)} "
                             "--force`", info["packages"], info["key"])
        shown = ", ".join(f"{k} {v}" for k, v in info["packages"].items() if k in self.shown_packages)
        return EnvStatus(self.name, self.path, True, f"Python {info['python']}, {shown}", info["packages"], info["key"])

    def create(self, say: Callable[[str], None] = print, force: bool = False) -> EnvStatus:
        if self.status().present and not force:
            say(f"{self.name}: already present at {self.path} (--force makes it again)")
            return self.status()
        text = requirements_text(self.name)
        together, no_deps = requirement_groups(text)
        with staged(self.path) as staging:
            built_at = staging
            say(f"{self.name}: a virtual environment with {len(together) + len(no_deps)} pinned packages "
                f"(edgeopt/envs/requirements/{self.name}.txt)")
            run_step([sys.executable, "-m", "venv", str(staging / "venv")])
            # the venv is made in the staging folder and moved: its scripts' shebangs name the staging path,
            # so pip is always run as `python -m pip` through the interpreter, never through bin/pip
            pip = [str(staging / "venv" / "bin" / "python"), "-m", "pip", "install", "--quiet",
                   "--disable-pip-version-check"]
            run_step([*pip, *together])
            if no_deps:
                run_step([*pip, "--no-deps", *no_deps])
            packages = _frozen(staging / "venv" / "bin" / "python")
            python = run_step([str(staging / "venv" / "bin" / "python"), "-c",
                               "import sys; print('%d.%d' % sys.version_info[:2])"]).stdout.strip()
            from edgeopt.hashing import value_digest

            (staging / "env.json").write_text(json.dumps({
                "name": self.name, "python": python, "requirements": text, "packages": packages,
                "key": value_digest({"requirements": text, "python": python, "packages": packages})}, indent=2))
        repoint_scripts(self.path / "venv" / "bin", built_at / "venv", self.path / "venv")
        self._check_imports(say)
        say(f"{self.name}: ready at {self.path}")
        return self.status()

    def _check_imports(self, say: Callable[[str], None]) -> None:
        """The worker and the toolchain import in the made environment, or it is removed again."""
        modules = ("edgeopt.worker", *self.imports)
        completed = subprocess.run([self.python(), "-c", "import " + ", ".join(modules)], capture_output=True,
                                   text=True)
        if completed.returncode != 0:
            self.remove()
            tail = " | ".join((completed.stderr.strip() or completed.stdout.strip()).splitlines()[-3:])
            raise EnvCreateFailed(f"{self.name}: `import {', '.join(modules)}` failed in the new environment: {tail}")
        say(f"{self.name}: {', '.join(modules)} import")


def repoint_scripts(bin_dir: Path, built_at: Path, now_at: Path) -> list[str]:
    """The venv's scripts (console entry points, activate) name the folder it was built in: point them at where it
    was moved, so `olive` in the olive environment runs (before, its shebang named the deleted staging folder and
    the shell said "No such file or directory" of a file that is there). Returns the files changed."""
    old, new = str(built_at).encode(), str(now_at).encode()
    changed = []
    for script in sorted(bin_dir.iterdir()):
        if script.is_symlink() or not script.is_file():
            continue  # bin/python links to the base interpreter
        content = script.read_bytes()
        if old in content:
            script.write_bytes(content.replace(old, new))
            changed.append(script.name)
    return changed


def _frozen(python: Path) -> dict[str, str]:
    listed = run_step([str(python), "-m", "pip", "list", "--format=json", "--disable-pip-version-check"]).stdout
    return {p["name"].lower(): p["version"] for p in json.loads(listed)}
