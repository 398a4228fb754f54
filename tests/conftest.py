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
def cli():
    """Run the CLI in-process, capturing its output."""

    def run(*argv: str, environ: dict | None = None) -> CliResult:
        out, err = io.StringIO(), io.StringIO()
        env = Environment(stdout=out, stderr=err, environ=environ if environ is not None else {"PATH": "/usr/bin:/bin"})
        status = main(list(argv), env)
        return CliResult(status, out.getvalue(), err.getvalue())

    return run
