from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest

from edgeopt.cli import Environment, main

REPO = Path(__file__).resolve().parents[1]


class CliResult:
    def __init__(self, status, stdout: str, stderr: str):
        self.status, self.stdout, self.stderr = status, stdout, stderr


@pytest.fixture
def cache_dir(tmp_path_factory):
    """A build cache of the test's own: builds in one test share it, tests never share one. Removed when the
    test ends: the example builds' caches hold gigabytes, and a full run that kept them filled CI's disk."""
    folder = tmp_path_factory.mktemp("cache")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


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


# -- CI installs every tool: there, a skipped test is a broken install, not an optional extra ---------------
def _tools_required() -> bool:
    return os.environ.get("EDGEOPT_REQUIRE_TOOLS") == "1"


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    """With EDGEOPT_REQUIRE_TOOLS=1 (make test, CI) any skip fails the run: an importorskip that fires there
    means a framework or system tool the project's own install should have provided is missing, and its tests
    would otherwise pass silently."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if not _tools_required() or reporter is None or exitstatus not in (0, 1):
        return
    skipped = reporter.stats.get("skipped", [])
    if not skipped:
        return
    reporter.write_sep("=", f"{len(skipped)} skipped under EDGEOPT_REQUIRE_TOOLS=1: the install is incomplete",
                       red=True)
    for report in skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reporter.write_line(f"{report.nodeid}: {reason}")
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
