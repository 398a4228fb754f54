"""Deployable archives: the selected model, edgeopt-artifact.json (what a device needs to know, with a
sha256 per file) and a runnable example for the framework's own runtime; and their verification."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

from edgeopt import __version__
from edgeopt.artifact import ModelArtifact
from edgeopt.candidates import CandidateRecord
from edgeopt.errors import PackageError, UsageError
from edgeopt.frameworks.base import GraphRuntime, bundled_script
from edgeopt.preprocessing import FOLDER as PREPROCESSING
from edgeopt.registry import Registry
from edgeopt.report import Report

ARTIFACT_JSON = "edgeopt-artifact.json"
EXAMPLE = "run_example.py"
PREPROCESS = "preprocess.py"  # real inputs → model inputs, shipped when the build knows how (preprocessing/)
MOBILE_OS = ("android", "ios")
FORMAT_VERSION = 1


def deployment_notes(manifest) -> list[str]:
    """What the caller must do around the model, read from the manifest that built it."""
    data = manifest.evaluation.data
    notes = []
    if data.type == "text":
        notes.append(f"inputs are token ids: tokenize with the tokenizer of {manifest.model.path} "
                     f"(max_length {data.max_length}, padded; attention_mask marks real tokens)")
        if manifest.model.format == "sentence-transformers":
            notes.append("pooling and normalization of the sentence-transformers model are inside the exported graph: "
                         "the output is the sentence embedding")
    elif data.type == "images":
        notes.append(f"images: resize to {data.size[0]}x{data.size[1]}, {data.channels} channel(s), NCHW float32, "
                     f"pixel × {data.scale:g}, then (x - {data.mean}) / {data.std}")
    elif data.type == "hook":
        notes.append(f"inputs are prepared by {data.function} (see the project that built this package)")
    metric = manifest.evaluation.metric
    if metric.decode:
        notes.append(f"outputs are decoded by {metric.decode}")
    notes.append(f"accuracy was judged with {metric.name} on output {metric.output!r}")
    return [*notes, *manifest.package.notes]


def artifact_of(record: CandidateRecord, registry: Registry) -> ModelArtifact:
    """A recorded candidate's model as an artifact (for a report read back from disk)."""
    runtime = registry.adapter(record.framework).runtime
    main = Path(record.model_path)
    return ModelArtifact(path=str(main), format=runtime.package_format, framework=record.framework,
                         precision=record.precision or "fp32", runtime_config=record.runtime_config,
                         files=tuple(str(Path(p).relative_to(main.parent)) for p in record.model_files if Path(p) != main))


def write_package(report: Report, build_dir: Path, registry: Registry, candidate: str | None = None,
                  out: Path | None = None, artifact: ModelArtifact | None = None) -> Path:
    """The archive of the selected (or named) candidate. A build passes the artifact it holds; a report
    read back from disk rebuilds it from the record."""
    chosen = candidate or report.selected
    if chosen is None:
        ids = [c.id for c in report.candidates if c.status == "ok"]
        raise UsageError(f"no candidate of {build_dir} passed every gate; package one anyway with --candidate ID "
                         f"(measured: {', '.join(ids) or 'none'})")
    record = report.record(chosen)
    if record is None or record.status != "ok":
        raise UsageError(f"no measured candidate {chosen!r} in {build_dir / 'report.json'}")
    runtime = registry.adapter(record.framework).runtime
    artifact = artifact or artifact_of(record, registry)
    members = {f"model/{name}": path for name, path in runtime.package_files(artifact).items()}
    scripts = {EXAMPLE: runtime.example_script()}
    graph = isinstance(runtime, GraphRuntime)  # language-model runtimes tokenize inside; their examples take text
    preprocessing = report.preprocessing if graph else None
    if graph:
        scripts[PREPROCESS] = bundled_script(PREPROCESS)
    if preprocessing is not None:
        members.update({f"{PREPROCESSING}/{name}": Path(build_dir) / PREPROCESSING / name
                        for name in preprocessing.files()})
    scratch = tempfile.TemporaryDirectory(prefix="edgeopt-package-")
    mobile = runtime.mobile_files(artifact, Path(scratch.name)) if report.plan.target.os in MOBILE_OS else {}
    members.update({f"model/{name}": path for name, path in mobile.items()})
    m = record.metrics
    descriptor = {
        "format_version": FORMAT_VERSION,
        "edgeopt_version": __version__,
        "name": report.manifest,
        "candidate": chosen,
        "target": report.target.model_dump(),
        "framework": record.framework,
        "runtime": runtime.runtime_requirement(report.environment.get("frameworks", {})),
        "precision": record.precision,
        "model": {"path": f"model/{runtime.package_entry(artifact)}", "format": runtime.package_format},
        "runtime_config": record.runtime_config,
        "io": runtime.io_spec(artifact),
        "processing_notes": report.deployment_notes,
        "preprocessing": preprocessing.model_dump(mode="json") if preprocessing else None,
        "mobile": {"model": f"model/{next(iter(mobile))}", "files": [f"model/{name}" for name in mobile],
                   "why": f"{report.plan.target.name} runs apps on {report.plan.target.os}: the runtime's mobile "
                          "form, and what a reduced runtime build for the app needs"} if mobile else None,
        "metrics": {"provenance": record.provenance, "provenance_statement": report.provenance.statement,
                    "latency_ms": m.latency_ms.model_dump() if m.latency_ms else None, "peak_rss_mb": m.peak_rss_mb,
                    "size_mb": m.size_mb, "accuracy": m.accuracy,
                    "ratios_to_baseline": record.ratios.model_dump(mode="json"),
                    "gates": {k: {"passed": g.passed, "verdict": g.verdict, "value": g.value, "threshold": g.threshold}
                              for k, g in record.gates.items()}},
        "example": EXAMPLE,
        "files": {name: _sha256(path) for name, path in members.items()},
    }
    descriptor["files"].update({name: hashlib.sha256(text.encode()).hexdigest() for name, text in scripts.items()})
    out = Path(out) if out else Path(build_dir) / "package"
    out.mkdir(parents=True, exist_ok=True)
    archive = out / f"{report.manifest}-{report.target.id}-{chosen}.tar.gz"
    partial = archive.with_name(archive.name + ".partial")
    with scratch, tarfile.open(partial, "w:gz") as tar:
        _add_bytes(tar, ARTIFACT_JSON, json.dumps(descriptor, indent=2).encode())
        for name, text in scripts.items():
            _add_bytes(tar, name, text.encode(), mode=0o755 if name == EXAMPLE else 0o644)
        for name, path in members.items():
            tar.add(path, arcname=name, recursive=False)
    partial.replace(archive)
    return archive


def emulated_python(archive: Path, environ) -> str:
    """The aarch64 Python of the emulation environment, as the core of the package's target (an A76 when
    the target names no modelled core)."""
    from edgeopt.catalog import load_catalog
    from edgeopt.envs import AARCH64, environment
    from edgeopt.errors import UnknownTarget
    from edgeopt.estimate.cores import core_for, load_cores

    cores = load_cores()
    core = cores["cortex-a76"]
    try:
        found = core_for(load_catalog().resolve(_descriptor_of(archive)["target"]["id"]), cores)
        core = found or core
    except (KeyError, TypeError, UnknownTarget):
        pass  # verify itself says what is wrong with the archive
    return environment(AARCH64, environ).python(core)


def host_python(archive: Path, registry: Registry, environ) -> str:
    """The interpreter that runs the package's example on this host: the backend environment of a framework that
    has one (an .rknn loads with rknn-toolkit2, which lives in the rknn environment), else this one."""
    from edgeopt.envs import environment

    framework = _descriptor_of(archive).get("framework")
    entry = registry.entry(framework) if isinstance(framework, str) else None
    # no framework edgeopt knows: verify itself says what is wrong with the archive
    return environment(entry.runs_in, environ).python() if entry and entry.runs_in else sys.executable


def _descriptor_of(archive: Path) -> dict:
    """The archive's descriptor as it is ({} where there is none to read: verify says why)."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            descriptor = json.load(tar.extractfile(ARTIFACT_JSON))
    except (OSError, tarfile.TarError, KeyError, TypeError, ValueError, AttributeError):
        return {}
    return descriptor if isinstance(descriptor, dict) else {}


def verify_package(archive: Path, python: str = sys.executable, timeout_s: float = 300) -> list[str]:
    """Checksums, no path escaping the archive, no links; then the bundled example runs one input."""
    archive = Path(archive)
    if not archive.is_file():
        raise UsageError(f"{archive}: no such archive")
    try:
        tar = tarfile.open(archive, "r:*")
    except tarfile.TarError as exc:
        raise PackageError(f"{archive}: not a readable archive ({exc})") from None
    with tar, tempfile.TemporaryDirectory(prefix="edgeopt-verify-") as scratch:
        members = tar.getmembers()
        for member in members:
            _check_member(member)
        names = {m.name for m in members if m.isfile()}
        if ARTIFACT_JSON not in names:
            raise PackageError(f"{archive}: no {ARTIFACT_JSON}: not an edgeopt package")
        tar.extractall(scratch, filter="data")
        root = Path(scratch)
        try:
            descriptor = json.loads((root / ARTIFACT_JSON).read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PackageError(f"{archive}: {ARTIFACT_JSON} is not JSON text ({type(exc).__name__})") from None
        listed = descriptor.get("files") if isinstance(descriptor, dict) else None
        if not isinstance(listed, dict) or not all(isinstance(v, str) for v in listed.values()):
            raise PackageError(f"{archive}: {ARTIFACT_JSON} is not an edgeopt descriptor (no `files` with checksums)")
        for name, digest in listed.items():
            _check_member_name(name)
            path = root / name
            if not path.is_file():
                raise PackageError(f"{archive}: {name} is listed in {ARTIFACT_JSON} but missing")
            if _sha256(path) != digest:
                raise PackageError(f"{archive}: {name} was modified (sha256 does not match {ARTIFACT_JSON})")
        unlisted = sorted(names - set(listed) - {ARTIFACT_JSON})
        if unlisted:
            raise PackageError(f"{archive}: files not listed in {ARTIFACT_JSON}: {', '.join(unlisted)}")
        lines = [f"checksums: {len(listed)} files match"]
        _check_model(archive, root, descriptor)
        try:
            run = subprocess.run([python, EXAMPLE, "--check"], cwd=root, capture_output=True, text=True,
                                 timeout=timeout_s, env={**os.environ, "ORT_DISABLE_TELEMETRY": "1"})
        except subprocess.TimeoutExpired:
            raise PackageError(f"{archive}: the example did not finish within {timeout_s:.0f} s") from None
        if run.returncode != 0:
            last = (run.stderr.strip() or run.stdout.strip() or "no output").splitlines()[-1]
            raise PackageError(f"{archive}: the model did not run: {last}")
        lines += [f"example: {line}" for line in run.stdout.strip().splitlines()]
        return [*lines, f"verified: {archive}"]


def _check_model(archive: Path, root: Path, descriptor: dict) -> None:
    """The model file itself, before anything loads it: a corrupt or hostile model is refused here."""
    from edgeopt.errors import ModelRejected
    from edgeopt.model_checks import check_gguf, check_onnx, check_openvino_ir, check_rknn

    model = descriptor.get("model") if isinstance(descriptor.get("model"), dict) else {}
    path, fmt = model.get("path"), model.get("format")
    if not isinstance(path, str):
        raise PackageError(f"{archive}: {ARTIFACT_JSON} names no model path")
    _check_member_name(path)
    checks = {"onnx": check_onnx, "gguf": check_gguf, "openvino-ir": check_openvino_ir, "rknn": check_rknn}
    try:
        if fmt in checks and (root / path).is_file():
            checks[fmt](root / path)
    except ModelRejected as exc:
        raise PackageError(f"{archive}: the model is refused: {exc}") from None


def _check_member(member: tarfile.TarInfo) -> None:
    _check_member_name(member.name)
    if not (member.isfile() or member.isdir()):
        raise PackageError(f"archive member {member.name!r} is a link or device: refused")


def _check_member_name(name: str) -> None:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or name.startswith("\\"):
        raise PackageError(f"archive member {name!r} escapes the archive: refused")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _add_bytes(tar: tarfile.TarFile, name: str, payload: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(payload), mode
    tar.addfile(info, io.BytesIO(payload))
