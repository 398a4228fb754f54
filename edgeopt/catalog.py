"""The target catalog: one YAML per device under targets/, plus `host`, detected from this machine."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from edgeopt.errors import UnknownTarget
from edgeopt.hostinfo import HostFacts
from edgeopt.resources import data_dir
from edgeopt.validation import validate_model
from edgeopt.yamlio import load_yaml

Vendor = Literal["intel", "amd", "apple", "rockchip", "broadcom", "nvidia", "qualcomm", "generic"]


class _Facts(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CpuCluster(_Facts):
    uarch: str
    cores: int
    max_ghz: float | None = None
    fp32_flops_per_cycle: int | None = None


class Cpu(_Facts):
    clusters: list[CpuCluster] = []
    isa: list[str] = []
    isa_absent: list[str] = []
    source: str


class PeakCompute(_Facts):
    fp32_gflops: float | None = None
    int8_gops: float | None = None
    basis: str  # how the figure was obtained: "derived: cores x GHz x FLOPs/cycle", "datasheet", ...
    source: str


class Memory(_Facts):
    type: str | None = None
    ram_gb: list[float] = []
    bandwidth_gbps: float | None = None
    measured_bandwidth_gbps: float | None = None
    source: str


class Accelerator(_Facts):
    kind: str
    name: str
    cores: int = 1  # independent cores a model can be placed on (an RK3588's NPU has 3; one runs a model)
    tops_int8: float | None = None
    precisions: list[str] = []
    toolchain: str | None = None
    platform: str | None = None  # the toolchain's name for the chip (rknn-toolkit2's target_platform)
    optional: bool = False
    source: str


class FrameworkChain(_Facts):
    preferred: list[str]
    fallback: list[str] = []
    # The vendor's own runtimes edgeopt does not drive (yet); kept so the plan can say they exist.
    vendor_runtimes: list[str] = []
    reason: str

    @property
    def chain(self) -> list[str]:
        return [*self.preferred, *(f for f in self.fallback if f not in self.preferred)]


class Target(_Facts):
    id: str
    name: str
    aliases: list[str] = []
    vendor: Vendor
    arch: Literal["x86_64", "aarch64"]
    # the operating system apps run on: a phone's package also carries the runtime's mobile form
    os: Literal["linux", "android", "ios", "macos", "windows"] = "linux"
    detected: bool = False  # True only for `host`: facts read from this machine, not from a datasheet
    cpu: Cpu
    peak: PeakCompute | None = None
    memory: Memory
    accelerators: list[Accelerator] = []
    frameworks: FrameworkChain
    sources: dict[str, str] = Field(default_factory=dict)
    notes: list[str] = []

    @property
    def cores(self) -> int:
        return sum(c.cores for c in self.cpu.clusters)

    @property
    def npu(self) -> Accelerator | None:
        """The NPU the board has built in (an optional add-on is not counted)."""
        return next((a for a in self.accelerators if a.kind == "npu" and not a.optional), None)


class Catalog(_Facts):
    targets: tuple[Target, ...]

    def ids(self) -> list[str]:
        return [t.id for t in self.targets]

    def resolve(self, name: str) -> Target:
        wanted = name.strip().lower()
        for target in self.targets:
            if wanted == target.id or wanted in target.aliases:
                return target
        names = [n for t in self.targets for n in (t.id, *t.aliases)]
        raise UnknownTarget(name, names)


def load_catalog(folder: Path | None = None, host: HostFacts | None = None) -> Catalog:
    folder = folder or data_dir("targets")
    targets = [
        validate_model(Target, load_yaml(path), str(path)) for path in sorted(folder.glob("*.yaml"))
    ]
    if host is not None:
        targets.append(host_target(host))
    return Catalog(targets=tuple(targets))


def host_target(host: HostFacts) -> Target:
    is_x86 = host.arch == "x86_64"
    vendor = host.vendor if host.vendor in ("intel", "amd", "apple") else "generic"
    if is_x86:
        chain = FrameworkChain(
            preferred=["openvino", "onnxruntime"],
            fallback=["gguf"],
            reason="x86 CPU: OpenVINO is tuned for x86 (Intel first); ONNX Runtime runs everywhere",
        )
    else:
        chain = FrameworkChain(
            preferred=["onnxruntime", "gguf"],
            fallback=[],
            reason="ARM CPU: ONNX Runtime for graphs, llama.cpp (GGUF) for language models",
        )
    return Target(
        id="host",
        name=f"this machine ({host.cpu_model})",
        aliases=["local"],
        vendor=vendor,
        arch="x86_64" if is_x86 else "aarch64",
        detected=True,
        cpu=Cpu(
            clusters=[CpuCluster(uarch=host.cpu_model, cores=host.cores)],
            isa=list(host.isa),
            source="detected",
        ),
        memory=Memory(ram_gb=[host.ram_gb] if host.ram_gb else [], source="detected"),
        frameworks=chain,
        sources={"detected": "read from /proc/cpuinfo, /proc/meminfo and os.sched_getaffinity at run time"},
    )
