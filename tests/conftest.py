from __future__ import annotations

import io
from pathlib import Path

import pytest

from edgeopt.cli import Environment, main

REPO = Path(__file__).resolve().parents[1]


class CliResult:
    def __init__(self, status, stdout: str, stderr: str):
        self.status, self.stdout, self.stderr = status, stdout, stderr


@pytest.fixture
def cache_dir(tmp_path_factory) -> Path:
    """A build cache of the test's own: builds in one test share it, tests never share one."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def cli(cache_dir):
    """Run the CLI in-process, capturing its output."""

    def run(*argv: str, environ: dict | None = None) -> CliResult:
        out, err = io.StringIO(), io.StringIO()
        base = {"PATH": "/usr/bin:/bin", "EDGEOPT_CACHE_DIR": str(cache_dir)}
        env = Environment(stdout=out, stderr=err, environ={**base, **environ} if environ is not None else base)
        status = main(list(argv), env)
        return CliResult(status, out.getvalue(), err.getvalue())

    return run
