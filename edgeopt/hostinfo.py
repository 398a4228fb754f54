"""Facts about the machine edgeopt runs on, read from the OS (the `host` target)."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class HostFacts:
    arch: str
    vendor: str
    cpu_model: str
    cores: int
    isa: tuple[str, ...]
    ram_gb: float | None
    notes: tuple[str, ...] = field(default=())


# The ISA flags that decide which kernels a runtime can use; everything else in /proc/cpuinfo is noise here.
_INTERESTING_FLAGS = (
    "sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni", "avx512f", "avx512_vnni", "avx512_bf16",
    "amx_tile", "amx_int8", "amx_bf16", "amx_fp16", "avx512_fp16", "neon", "asimd", "asimddp", "asimdhp", "fphp", "i8mm", "bf16", "sve",
)


def detect_host(cpuinfo_path: Path = Path("/proc/cpuinfo"), meminfo_path: Path = Path("/proc/meminfo")) -> HostFacts:
    arch = _normalise_arch(platform.machine())
    fields = _read_cpuinfo(cpuinfo_path)
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    vendor_raw = fields.get("vendor_id", fields.get("CPU implementer", ""))
    vendor = {"GenuineIntel": "intel", "AuthenticAMD": "amd", "0x41": "arm", "0x61": "apple"}.get(vendor_raw, vendor_raw or "unknown")
    cpu_model = fields.get("model name") or fields.get("Model") or platform.processor() or "unknown"
    return HostFacts(
        arch=arch,
        vendor=vendor,
        cpu_model=cpu_model,
        cores=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1),
        isa=tuple(f for f in _INTERESTING_FLAGS if f in flags),
        ram_gb=_read_ram_gb(meminfo_path),
    )


def _normalise_arch(machine: str) -> str:
    machine = machine.lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)


def _read_cpuinfo(path: Path) -> dict[str, str]:
    fields: dict[str, str] = {}
    try:
        for line in path.read_text(errors="replace").splitlines():
            key, sep, value = line.partition(":")
            if sep and key.strip() not in fields:
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


def _read_ram_gb(path: Path) -> float | None:
    try:
        for line in path.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None
