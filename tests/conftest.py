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


def run_cli(*argv: str, environ: dict) -> CliResult:
    """The CLI in-process, output captured, with exactly the environment given."""
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), Environment(stdout=out, stderr=err, environ=environ))
    return CliResult(status, out.getvalue(), err.getvalue())


@pytest.fixture
def cli(cache_dir):
    """Run the CLI in-process, capturing its output; `environ` adds to a minimal environment."""

    def run(*argv: str, environ: dict | None = None) -> CliResult:
        base = {"PATH": "/usr/bin:/bin", "EDGEOPT_CACHE_DIR": str(cache_dir)}
        return run_cli(*argv, environ={**base, **(environ or {})})

    return run
