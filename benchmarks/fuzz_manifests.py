"""Property-based fuzzing of what edgeopt reads from its users: manifests and command lines.

Usage: python benchmarks/fuzz_manifests.py [--cases 5000] [--seed N] [--out benchmarks/results/fuzz.json]

Generated with hypothesis: manifests (the real keys with values of every type, random YAML text, alias
structures up to billion-laughs size, random bytes, long values, deep nesting) run through `edgeopt plan`,
and argument lists for `plan`, `targets`, `schema`, `gate` and `verify`. Each runs in-process; a case
fails when stderr holds a traceback or an internal error, the exit status is not one the command documents
(plan: 0 1 2 4; targets, schema, gate: 0 1 2; verify: 2 5, a refused archive), the error message runs past
a few thousand characters, or the case takes longer than a second.

Written: cases, total seconds, the slowest case, the process's peak RSS, and every failure (with its input
cut to a few hundred characters). tests/unit/test_hostile_inputs.py runs the same generators in CI.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import sys
import tarfile
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from edgeopt.cli import Environment, main

CASE_LIMIT_S = float(os.environ.get("EDGEOPT_FUZZ_CASE_S", "1.0"))
MAX_STDERR = 4000  # characters of an error message
ALLOWED = {"plan": {0, 1, 2, 4}, "targets": {0, 2}, "schema": {0, 2}, "gate": {0, 1, 2}, "verify": {2, 5}}

VALID = {
    "name": "demo",
    "model": {"path": "model.onnx", "format": "onnx", "task": "classification"},
    "evaluation": {"data": {"type": "npz", "path": "eval.npz"}, "metric": {"name": "top1"}},
}
# the manifest's real keys, as dotted paths (values of every type are put at them)
KEYS = [
    "name", "description", "target", "prefer", "base_dir", "inputs", "inputs.0", "inputs.0.name", "inputs.0.shape",
    "inputs.0.dtype", "model", "model.path", "model.format", "model.task", "evaluation", "evaluation.data",
    "evaluation.data.type", "evaluation.data.path", "evaluation.data.function", "evaluation.data.args",
    "evaluation.data.size", "evaluation.data.limit", "evaluation.data.labels_key", "evaluation.metric",
    "evaluation.metric.name", "evaluation.metric.output", "evaluation.metric.decode", "evaluation.batch_size",
    "calibration", "calibration.data", "calibration.data.type", "calibration.samples", "gates", "gates.policy",
    "gates.speedup", "gates.accuracy_retained", "gates.memory_cut", "gates.memory_basis", "measure",
    "measure.batch_size", "measure.rounds", "measure.max_rounds", "measure.time_budget_s", "measure.threads",
    "measure.memory_limit_mb", "search", "search.strategy", "search.frameworks", "search.max_candidates", "llm",
    "llm.prompts", "llm.context_length", "package", "package.notes", "output", "output.dir",
]
WORDS = ["onnx", "gguf", "hook", "npz", "images", "text", "top1", "cer", "host", "rk3566", "latency", "default",
         "module:function", "pkg:edgeopt/x", "../../etc/passwd", "/dev/zero", "~", "null", "true", "1e309", "-1"]


# -- values and documents ---------------------------------------------------------------------------------------
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40), st.sampled_from(WORDS),
    st.dates(), st.binary(max_size=16))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=5), st.dictionaries(st.one_of(st.text(max_size=12), st.sampled_from(KEYS)), inner,
                                                 max_size=5)), max_leaves=20)


def _set(doc: dict, dotted: str, value) -> dict:
    parts = dotted.split(".")
    node = doc
    for part in parts[:-1]:
        child = node[int(part)] if isinstance(node, list) and part.isdigit() and int(part) < len(node) else (
            node.get(part) if isinstance(node, dict) else None)
        if not isinstance(child, (dict, list)):
            child = {}
            if isinstance(node, dict):
                node[part] = child
            else:
                return doc
        node = child
    if isinstance(node, dict):
        node[parts[-1]] = value
    elif parts[-1].isdigit() and int(parts[-1]) < len(node):
        node[int(parts[-1])] = value
    return doc


@st.composite
def mutated_manifests(draw) -> bytes:
    """The valid manifest with real keys set to values of every type, keys dropped and unknown keys added."""
    doc = json.loads(json.dumps(VALID))
    for key in draw(st.lists(st.sampled_from(KEYS), max_size=4)):
        doc = _set(doc, key, draw(values))
    for key in draw(st.lists(st.sampled_from(list(VALID)), max_size=2)):
        doc.pop(key, None)
    for key in draw(st.lists(st.text(min_size=1, max_size=20), max_size=2)):
        doc[key] = draw(values)
    text = yaml.safe_dump(doc, allow_unicode=draw(st.booleans()))
    return text.encode("utf-8", "surrogatepass")


PLAUSIBLE = {  # values of the right kind, so that many manifests get past validation into the planner
    "target": st.sampled_from(["host", "rk3566", "rk3588", "pi5", "jetson-orin-nano", "intel-n100", "apple-m1",
                               "snapdragon-8-gen2", "x86-64", "rk9999"]),
    "model.format": st.sampled_from(["onnx", "hf-transformers", "sentence-transformers", "gguf"]),
    "model.task": st.sampled_from(["classification", "embedding", "ocr", "regression", "generic", "causal-lm"]),
    "evaluation.metric.name": st.sampled_from(["top1", "fidelity", "mae", "cer", "perplexity"]),
    "evaluation.metric.decode": st.sampled_from(["post:decode", None]),
    "evaluation.data": st.sampled_from([{"type": "text", "path": "t.txt"}, {"type": "hook", "function": "d:load"},
                                        {"type": "images", "path": "img", "size": [8, 8]}]),
    "search.frameworks": st.lists(st.sampled_from(["onnxruntime", "hf", "openvino", "gguf", "mlx", "rknn", "olive",
                                                   "tflite"]), max_size=3),
    "search.strategy": st.sampled_from(["exhaustive", "cheap-first"]),
    "search.max_candidates": st.integers(-1, 5),
    "gates.policy": st.sampled_from(["default", "llm", "size-first", "strict"]),
    "gates.speedup": st.floats(-1, 10),
    "prefer": st.sampled_from(["latency", "memory", "size", "accuracy"]),
    "inputs": st.just([{"name": "x", "shape": ["batch", 3, 8, 8]}]),
    "measure.rounds": st.integers(0, 20),
    "llm.context_length": st.integers(0, 4096),
}


@st.composite
def plausible_manifests(draw) -> bytes:
    doc = json.loads(json.dumps(VALID))
    for key in draw(st.lists(st.sampled_from(sorted(PLAUSIBLE)), max_size=4, unique=True)):
        doc = _set(doc, key, draw(PLAUSIBLE[key]))
    return yaml.safe_dump(doc).encode()


YAML_TOKENS = ["a:", "name:", "model:", "evaluation:", " ", "  ", "\n", "- ", "[", "]", "{", "}", ",", ":", "?", "&x ",
               "*x", "&y ", "*y", "<<: ", "!!binary ", "!!python/object:os.system ", "!!set ", "!!float ", "!!int ",
               "!!timestamp ", "'", '"', "#", "---\n", "...\n", "|", ">", "\t", "1", "0x1F", "0o17", "1_000", "~",
               "null", "2023-13-45", "1:2:3", "%YAML 1.1\n", "%TAG ! tag:x,1:\n", "é", "\u2028", "\ufeff", "\x07",
               ".inf", ".nan", "yes", "on", "=", "!", "%", "@", "`"]
random_yaml = st.one_of(
    st.lists(st.sampled_from(YAML_TOKENS), max_size=60).map("".join),
    st.text(max_size=300)).map(lambda text: text.encode("utf-8", "surrogatepass"))


@st.composite
def alias_structures(draw) -> bytes:
    """Anchors and aliases: nested repetition (a billion laughs at width 10, depth 9), self-reference, merges."""
    kind = draw(st.sampled_from(["laughs", "cycle", "merge", "shared"]))
    key = draw(st.sampled_from(["name", "inputs", "description", "evaluation", "model", "lol", "package"]))
    if kind == "laughs":
        width, depth = draw(st.integers(1, 12)), draw(st.integers(1, 12))
        lines = ['l0: &l0 "lol"']
        for level in range(1, depth + 1):
            lines.append(f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * width)}]")
        lines.append(f"{key}: *l{depth}")
        return "\n".join(lines).encode()
    if kind == "cycle":
        return f"{key}: &a [1, *a]\n".encode() if draw(st.booleans()) else f"{key}: &a {{x: *a}}\n".encode()
    if kind == "merge":
        return (f"base: &b {{path: m.onnx, format: onnx}}\nname: demo\nmodel:\n  <<: *b\n  task: classification\n"
                f"evaluation: {{data: {{type: npz, path: e.npz}}, metric: {{name: top1}}}}\n{key}x: *b\n").encode()
    return (b"name: demo\nmodel: &m {path: m.onnx, format: onnx}\ncalibration: {data: &d {type: npz, path: e.npz}}\n"
            b"evaluation: {data: *d, metric: {name: top1}}\n" + f"{key}: *m\n".encode())


random_bytes = st.one_of(
    st.binary(max_size=2000),
    st.tuples(st.sampled_from([b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\x89PNG\r\n\x1a\n", b"PK\x03\x04",
                               b"\x08\x07\x12\x04onnx", b"GGUF"]), st.binary(max_size=500)).map(b"".join),
    mutated_manifests().map(lambda raw: raw.decode("utf-8", "replace").encode("utf-16")))


@st.composite
def extremes(draw) -> bytes:
    """Long values, deep nesting, many values: each just past a bound or well inside it."""
    kind = draw(st.sampled_from(["long", "deep-flow", "deep-block", "many", "long-key"]))
    size = draw(st.sampled_from([10, 63, 64, 65, 500, 10_000, 65_536, 65_537, 80_000]))
    if kind == "long":
        return yaml.safe_dump({**VALID, draw(st.sampled_from(["name", "description", "target"])): "x" * size}).encode()
    if kind == "long-key":
        return yaml.safe_dump({**VALID, "k" * size: 1}).encode()
    if kind == "deep-flow":
        return ("name: " + "[" * size + "]" * size + "\n").encode()
    if kind == "deep-block":
        depth = min(size, 200)
        return ("".join("  " * i + "a:\n" for i in range(depth)) + "  " * depth + "b: 1\n").encode()
    return ("inputs: [" + ", ".join(["1"] * min(size, 60_000)) + "]\n").encode()


manifest_files = st.one_of(mutated_manifests(), plausible_manifests(), random_yaml, alias_structures(), random_bytes,
                           extremes())


# -- command lines ----------------------------------------------------------------------------------------------
FLAGS = {"plan": ["--target", "--json"], "targets": ["--json"], "schema": [],
         "gate": ["--against", "--tolerance", "--junit", "--summary"], "verify": []}
# what a shell can pass: any text without NUL, undecodable bytes as surrogate escapes (as Python's argv has them)
argv_text = st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=30),
    st.binary(max_size=12).map(lambda b: b.replace(b"\0", b"").decode("utf-8", "surrogateescape")),
    st.sampled_from(["0", "-1", "nan", "inf", "1e309", "-", "--", "=", "rk3566", "rk9999", "host", "pi5", ".", ".."]))


FIXTURES = ["@manifest", "@bytes", "@json", "@folder", "@missing", "@tar", "@badtar"]
# Known issues outside the files this fuzzing was written with (exit 3 instead of 2 or 5):
#  - edgeopt/report.py load_report reads with read_text(): a report that is not UTF-8 raises UnicodeDecodeError;
#  - edgeopt/package.py verify_package takes edgeopt-artifact.json for a JSON object with a `files` mapping.
# inputs a command is known to mishandle, left out with --skip-known-issues (none since report.load_report and
# verify_package refuse non-UTF-8 reports and non-object descriptors)
KNOWN_ISSUES: dict[str, list[str]] = {}


@st.composite
def command_lines(draw, known_issues: bool = True) -> list[str]:
    command = draw(st.sampled_from(list(FLAGS)))
    fixtures = [f for f in FIXTURES if known_issues or f not in KNOWN_ISSUES.get(command, ())]
    tokens = [command]
    for _ in range(draw(st.integers(0, 5))):
        choice = draw(st.integers(0, 9))
        if choice < 3 and FLAGS[command]:
            tokens.append(draw(st.sampled_from(FLAGS[command])))
        elif choice < 6:
            tokens.append(draw(st.sampled_from(fixtures)))
        else:
            tokens.append(draw(argv_text))
    return tokens


# -- running one case -------------------------------------------------------------------------------------------
@dataclass
class Outcome:
    argv: list[str]
    status: int
    stderr: str
    seconds: float
    problems: list[str] = field(default_factory=list)


def run(argv: list[str]) -> Outcome:
    out, err = io.StringIO(), io.StringIO()
    started = time.perf_counter()
    status = main(list(argv), Environment(stdout=out, stderr=err, environ={"PATH": "/usr/bin:/bin"}))
    seconds = time.perf_counter() - started
    result = Outcome(list(argv), int(status), err.getvalue(), seconds)
    command = next((a for a in argv if a in ALLOWED), None)
    allowed = ALLOWED.get(command, {0, 1, 2})
    if "Traceback" in result.stderr or "internal error" in result.stderr:
        result.problems.append("traceback or internal error")
    if result.status not in allowed:
        result.problems.append(f"exit status {result.status}, expected one of {sorted(allowed)}")
    if len(result.stderr) > MAX_STDERR:
        result.problems.append(f"{len(result.stderr):,} characters on stderr")
    if seconds > CASE_LIMIT_S:
        result.problems.append(f"took {seconds:.2f} s")
    return result


class Workdir:
    """A folder of fixture files the generated command lines refer to (as @name), and the manifest under test."""

    def __init__(self, folder: Path):
        self.folder = folder
        (folder / "folder").mkdir(exist_ok=True)
        (folder / "bytes.bin").write_bytes(bytes(range(256)) * 4)
        (folder / "report.json").write_text(json.dumps({"schema_version": 1, "selected": None}))
        with tarfile.open(folder / "package.tar.gz", "w:gz") as tar:  # a member escaping the archive
            info = tarfile.TarInfo("../escape.txt")
            info.size = 0
            tar.addfile(info, io.BytesIO(b""))
        with tarfile.open(folder / "bad-descriptor.tar.gz", "w:gz") as tar:  # a descriptor that is not an object
            info = tarfile.TarInfo("edgeopt-artifact.json")
            info.size = 5
            tar.addfile(info, io.BytesIO(b"[1,2]"))
        self.manifest = folder / "manifest.yaml"
        self.manifest.write_text(yaml.safe_dump(VALID))
        self.paths = {"@manifest": self.manifest, "@bytes": folder / "bytes.bin", "@json": folder / "report.json",
                      "@folder": folder / "folder", "@missing": folder / "missing.yaml",
                      "@tar": folder / "package.tar.gz", "@badtar": folder / "bad-descriptor.tar.gz"}

    def argv(self, tokens: list[str]) -> list[str]:
        return [str(self.paths[t]) if t in self.paths else t for t in tokens]


@contextmanager
def inside(folder: Path):
    """Relative paths on generated command lines land in the scratch folder, never in the checkout."""
    before = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def manifest_case(work: Workdir, content: bytes, target: str | None) -> Outcome:
    work.manifest.write_bytes(content)
    return run(["plan", str(work.manifest), *(["--target", target] if target else [])])


def warm_up(work: Workdir) -> None:
    """Import what the commands import once, so that no case is charged for it."""
    for argv in (["plan", str(work.manifest)], ["targets"], ["schema"], ["gate", str(work.paths["@json"])],
                 ["verify", str(work.paths["@tar"])]):
        run(argv)


def fuzz(cases: int, folder: Path, on_failure, seed_value: int | None = None, share_manifests: float = 0.65,
         known_issues: bool = True):
    """Run `cases` generated cases (a share of them manifests, the rest command lines); `on_failure(outcome,
    content)` is called for each failing case (raise in it to let hypothesis shrink the case). Without
    `known_issues`, command lines leave out the inputs of KNOWN_ISSUES."""
    work = Workdir(folder)
    stats = {"cases": 0, "seconds": 0.0, "slowest": 0.0, "slowest_case": None, "exit_statuses": {}}

    def record(outcome: Outcome, content: bytes | None) -> None:
        stats["cases"] += 1
        stats["seconds"] += outcome.seconds
        command = next((a for a in outcome.argv if a in ALLOWED), "?")
        by_status = stats["exit_statuses"].setdefault(command, {})
        by_status[str(outcome.status)] = by_status.get(str(outcome.status), 0) + 1
        if outcome.seconds > stats["slowest"]:
            stats["slowest"] = outcome.seconds
            stats["slowest_case"] = _describe(outcome.argv, content)
        if outcome.problems:
            on_failure(outcome, content)

    common = {"deadline": None, "database": None, "suppress_health_check": list(HealthCheck), "print_blob": True}
    manifest_count = round(cases * share_manifests)

    def manifests(content, target):
        record(manifest_case(work, content, target), content)

    def command_line(tokens):
        record(run(work.argv(tokens)), None)

    runs = []
    if manifest_count:
        runs.append(settings(max_examples=manifest_count, **common)(
            given(content=manifest_files, target=st.one_of(st.none(), argv_text))(manifests)))
    if cases - manifest_count:
        runs.append(settings(max_examples=cases - manifest_count, **common)(
            given(tokens=command_lines(known_issues))(command_line)))
    with inside(folder):
        warm_up(work)
        for test in runs:
            (seed(seed_value)(test) if seed_value is not None else test)()
    return stats


def _describe(argv: list[str], content: bytes | None) -> dict:
    described = {"argv": [a[:200] for a in argv]}
    if content is not None:
        described["manifest"] = content[:300].decode("utf-8", "backslashreplace")
        described["manifest_bytes"] = len(content)
    return described


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def main_(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=2000, help="generated cases in all (default 2000)")
    parser.add_argument("--seed", type=int, help="hypothesis seed, to repeat a run")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "fuzz.json")
    parser.add_argument("--skip-known-issues", action="store_true", help=f"leave out the inputs of {KNOWN_ISSUES}")
    args = parser.parse_args(argv)
    failures: list[dict] = []

    def keep(outcome: Outcome, content: bytes | None) -> None:
        if len(failures) < 200:
            failures.append({**_describe(outcome.argv, content), "status": outcome.status,
                             "problems": outcome.problems, "stderr": outcome.stderr[-600:],
                             "seconds": round(outcome.seconds, 4)})

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edgeopt-fuzz-") as scratch:
        stats = fuzz(args.cases, Path(scratch), keep, args.seed, known_issues=not args.skip_known_issues)
    result = {
        "cases": stats["cases"], "total_seconds": round(time.perf_counter() - started, 2),
        "cases_seconds": round(stats["seconds"], 2), "slowest_case_seconds": round(stats["slowest"], 4),
        "slowest_case": stats["slowest_case"], "max_rss_mb": round(peak_rss_mb(), 1),
        "exit_statuses": stats["exit_statuses"],
        "case_limit_seconds": CASE_LIMIT_S, "seed": args.seed, "known_issues_included": not args.skip_known_issues,
        "failures": failures,
        "python": sys.version.split()[0], "yaml_libyaml": bool(getattr(yaml, "__with_libyaml__", False)),
        "machine": _machine(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"{result['cases']} cases in {result['total_seconds']} s; slowest {result['slowest_case_seconds']} s; "
          f"peak RSS {result['max_rss_mb']} MB; {len(failures)} failures → {args.out}")
    return 1 if failures else 0


def _machine() -> dict:
    """Every benchmark result says which CPU it was measured on."""
    from edgeopt.hostinfo import detect_host

    host = detect_host()
    return {"cpu": host.cpu_model, "cores": host.cores, "isa": list(host.isa), "ram_gb": host.ram_gb}


if __name__ == "__main__":
    sys.exit(main_())
