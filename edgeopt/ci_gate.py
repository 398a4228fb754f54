"""The CI gate step: one test case per gate (and per regression check), JUnit XML, a Markdown summary."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from edgeopt.candidates import CandidateRecord
from edgeopt.gates import INCONCLUSIVE
from edgeopt.memory_reach import memory_floors, out_of_reach
from edgeopt.report import Report


@dataclass(frozen=True)
class Case:
    name: str
    passed: bool
    message: str


@dataclass(frozen=True)
class GateVerdict:
    suite: str
    candidate: str | None
    selected: bool
    cases: tuple[Case, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.cases)

    def compact(self) -> str:
        head = f"edgeopt gate {self.suite}: {'PASS' if self.passed else 'FAIL'}"
        which = f" — candidate {self.candidate}" + (" (selected)" if self.selected else " (best, not selected)") if self.candidate else ""
        return head + which + "".join(f"\n  {'✓' if c.passed else '✗'} {c.name}: {c.message}" for c in self.cases)

    def junit(self) -> str:
        failures = sum(not c.passed for c in self.cases)
        suite = ET.Element("testsuite", name=self.suite, tests=str(len(self.cases)), failures=str(failures), errors="0")
        for case in self.cases:
            node = ET.SubElement(suite, "testcase", classname=self.suite, name=case.name)
            if case.passed:
                ET.SubElement(node, "system-out").text = case.message
            else:
                ET.SubElement(node, "failure", message=case.message).text = case.message
        suites = ET.Element("testsuites", tests=str(len(self.cases)), failures=str(failures))
        suites.append(suite)
        ET.indent(suites)
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"

    def markdown(self) -> str:
        lines = [f"### edgeopt gate: {self.suite} — {'✅ PASS' if self.passed else '❌ FAIL'}", ""]
        if self.candidate:
            lines += [f"Candidate **{self.candidate}**" + (" (selected)" if self.selected else " (best, not selected)"), ""]
        lines += ["| check | result | detail |", "|---|---|---|"]
        lines += [f"| {c.name} | {'✅' if c.passed else '❌'} | {c.message} |" for c in self.cases]
        return "\n".join(lines) + "\n"


def representative(report: Report) -> tuple[CandidateRecord | None, bool]:
    """The selected candidate; without one, the measured candidate closest to passing (most gates passed,
    then the fastest), so the JUnit cases still say which gates failed and by how much."""
    if report.selected:
        return report.selected_record, True
    ok = [c for c in report.candidates if c.status == "ok" and c.gates]
    if not ok:
        return None, False
    best = max(ok, key=lambda c: (sum(g.passed for g in c.gates.values()), -(c.metrics.p50 or float("inf"))))
    return best, False


def gate_report(report: Report, previous: Report | None = None, tolerance: float = 0.05) -> GateVerdict:
    suite = f"edgeopt.{report.manifest}.{report.target.id}"
    candidate, selected = representative(report)
    if candidate is None:
        return GateVerdict(suite, None, False, (Case("build", False, "no candidate could be measured"),))
    floors = memory_floors(report.baseline, report.candidates, report.gate_policy)  # it reads measured ones only
    unreachable = {f.framework: f for f in out_of_reach(floors)}
    cases = []
    for name, gate in candidate.gates.items():
        value = "not measured" if gate.value is None else f"{gate.value:.3f}"
        if gate.interval:
            value += f" [95% CI {gate.interval[0]:.3f}–{gate.interval[1]:.3f}]"
        message = f"{value} (needs ≥ {gate.threshold})"
        if gate.verdict == "inconclusive":
            message = f"{INCONCLUSIVE}; {message}"
        if name == "memory_cut" and not gate.passed and candidate.framework in unreachable:
            message += f"; {unreachable[candidate.framework].sentence()}"  # why no model would pass it here
        cases.append(Case(name, gate.passed, message))
    if previous is not None:
        cases += _regressions(candidate, previous, tolerance)
    return GateVerdict(suite, candidate.id, selected, tuple(cases))


def _regressions(candidate: CandidateRecord, previous: Report, tolerance: float) -> list[Case]:
    """Against an earlier report: ratios to each build's own baseline (stable across noisy machines),
    and absolute size and memory, each allowed to worsen by `tolerance` (relative)."""
    before, _ = representative(previous)
    if before is None:
        return [Case("regression.previous", False, "the previous report has no measured candidate to compare with")]
    checks = (
        ("accuracy_retained", lambda c: c.ratios.accuracy_retained, True),
        ("speedup", lambda c: c.ratios.speedup, True),
        ("size_mb", lambda c: c.metrics.size_mb, False),
        ("peak_rss_mb", lambda c: c.metrics.peak_rss_mb, False),
    )
    cases = []
    for name, read, higher_is_better in checks:
        now, then = read(candidate), read(before)
        if now is None or then is None:
            cases.append(Case(f"regression.{name}", False, "not measured in one of the two reports"))
            continue
        limit = then * (1 - tolerance) if higher_is_better else then * (1 + tolerance)
        passed = now >= limit if higher_is_better else now <= limit
        cases.append(Case(f"regression.{name}", passed,
                          f"{now:.3f} now vs {then:.3f} before ({before.id}); limit {limit:.3f} at tolerance {tolerance:g}"))
    return cases


def write_gate_outputs(verdict: GateVerdict, out_dir: Path, junit: Path | None, summary: Path | None,
                       environ) -> tuple[Path, Path]:
    junit = junit or out_dir / "junit.xml"
    summary = summary or out_dir / "summary.md"
    for path, text in ((junit, verdict.junit()), (summary, verdict.markdown())):
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_text(text, encoding="utf-8")
        partial.replace(path)
    if environ.get("GITHUB_STEP_SUMMARY"):
        with open(environ["GITHUB_STEP_SUMMARY"], "a", encoding="utf-8") as f:
            f.write(verdict.markdown())
    return junit, summary
