"""The aarch64 userland that runs ONNX Runtime and OpenVINO's ARM builds under qemu-user, with the TCG plugin
that counts what they execute.

`edgeopt env create aarch64` (Linux) makes, under ~/.cache/edgeopt/envs/aarch64 (or $EDGEOPT_ENV_DIR):
  rootfs/   an arm64 Debian userland with Python, unpacked by mmdebstrap (extract only: no binfmt, no chroot)
  site/     the aarch64 wheels of the runtimes at the host's versions (pinned; every manylinux tag up to
            the userland's glibc, so pip cannot silently fall back to an old release)
  plugin/   a64count, built from the qemu-plugin.h of the installed qemu-user's own source package
  prefix/   one qemu -L prefix per core profile: the userland plus a /proc/cpuinfo naming that core, so
            the runtimes pick that core's kernels (dotprod or not)
  bin/      python-<core>: run aarch64 CPython as that core
Everything is built in a staging folder and renamed into place: a failed create leaves nothing half-made.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from edgeopt.envs.base import EnvCreateFailed, Environment, EnvStatus, create_command, run_step, staged
from edgeopt.errors import MissingDependency, UsageError

AARCH64 = "aarch64"
SYSTEM_PACKAGES = "qemu-user mmdebstrap libglib2.0-dev pkg-config gcc xz-utils"
SYSTEM_INSTALL = f"make aarch64-deps  (or, as root: apt-get install -y --no-install-recommends {SYSTEM_PACKAGES})"
# what a worker needs under emulation; the runtimes are added when the host has them
CORE_PACKAGES = ("numpy", "pydantic", "pydantic-core", "pyyaml")
RUNTIME_PACKAGES = ("onnxruntime", "openvino")
ROOTFS_PACKAGES = "python3,libpython3.11-stdlib,libstdc++6,libgomp1"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# what the guest takes from the arm64 userland; everything else (/tmp, /home, /work, /dev, …) it finds on the
# host: qemu -L looks a path up in the prefix first, from a snapshot taken when it starts, so a prefix /tmp
# would hide the files a build writes there afterwards
PREFIX_FOLDERS = ("usr", "lib", "lib64", "bin", "sbin", "etc")


def host_pins() -> dict[str, str]:
    """The host's versions of what the aarch64 userland needs: outputs compare like for like."""
    pins = {}
    for name in (*CORE_PACKAGES, *RUNTIME_PACKAGES):
        try:
            pins[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            if name in CORE_PACKAGES:
                raise
    return pins


class Aarch64Env(Environment):
    name = AARCH64
    describes = "the aarch64 emulation environment"

    # -- what is there ----------------------------------------------------------------------------------
    def status(self) -> EnvStatus:
        info = self._recorded()
        if info is None:
            return self._not_created()
        wanted = host_pins()
        stale = {k: (info["packages"].get(k), v) for k, v in wanted.items() if info["packages"].get(k) != v}
        if stale:
            changes = ", ".join(f"{k} {old or 'missing'} → {new}" for k, (old, new) in stale.items())
            return EnvStatus(self.name, self.path, False, f"out of date with this host ({changes}); run "
                             f"`{create_command(self.name)}` again", info["packages"], info["key"])
        return EnvStatus(self.name, self.path, True, f"python {info['python']}, qemu {info['qemu']}",
                         info["packages"], info["key"])

    def has_runtime(self, package: str) -> bool:
        return package in self.status().packages

    # -- using it ---------------------------------------------------------------------------------------
    def python(self, core) -> str:
        """A command that runs aarch64 CPython as `core` (a CoreProfile), with the runtimes and edgeopt."""
        self.require()
        prefix = self._prefix(core)
        code = self._edgeopt_code()
        interpreter = json.loads((self.path / "env.json").read_text())["interpreter"]
        script = (f"#!/bin/sh\n# aarch64 CPython as a {core.uarch} under qemu-user (written by edgeopt)\n"
                  f'exec qemu-aarch64 -cpu {core.qemu_cpu} -L {prefix} $EDGEOPT_QEMU_ARGS -U PYTHONHOME '
                  f"-E PYTHONPATH={self.path / 'site'}:{code} -E PYTHONNOUSERSITE=1 -E PYTHONDONTWRITEBYTECODE=1 "
                  f'{self.path / "rootfs" / interpreter} "$@"\n')
        return self._wrapper(f"python-{core.uarch}", script)

    def plugin(self) -> Path:
        return self.path / "plugin" / "liba64count.so"

    def _prefix(self, core) -> Path:
        """The userland seen through symlinks, plus a /proc/cpuinfo that names `core` (qemu 7.2 passes the
        host's x86 cpuinfo through, which crashes ONNX Runtime's cpuinfo library and names no ARM core)."""
        prefix = self.path / "prefix" / core.uarch
        cpuinfo = prefix / "proc" / "cpuinfo"
        text = core.cpuinfo(cores=2)
        rootfs = self.path / "rootfs"
        (prefix / "proc").mkdir(parents=True, exist_ok=True)
        for name in PREFIX_FOLDERS:
            entry, link = rootfs / name, prefix / name
            if (entry.exists() or entry.is_symlink()) and not link.is_symlink():
                link.symlink_to(entry)
        for stale in prefix.iterdir():  # folders a guest must see as the host's (/tmp, /home, …) stay out
            if stale.is_symlink() and stale.name not in PREFIX_FOLDERS:
                stale.unlink()
        if not cpuinfo.exists() or cpuinfo.read_text() != text:
            cpuinfo.write_text(text)
        return prefix

    # -- making it --------------------------------------------------------------------------------------
    def create(self, say: Callable[[str], None] = print, force: bool = False) -> EnvStatus:
        if sys.platform != "linux" or platform.machine().lower() not in ("x86_64", "amd64", "aarch64", "arm64"):
            raise UsageError("the aarch64 environment is made with qemu-user and mmdebstrap: Linux hosts only")
        if self.status().present and not force:
            say(f"{self.name}: already present at {self.path} (--force makes it again)")
            return self.status()
        _require_tools()
        with staged(self.path) as staging:
            mirror = _debian_mirror()
            say(f"{self.name}: arm64 Debian userland from {mirror} (mmdebstrap --variant=extract)")
            run_step(["mmdebstrap", "--quiet", "--variant=extract",
                      "--mode=root" if os.geteuid() == 0 else "--mode=unshare", "--architectures=arm64",
                      f"--include={ROOTFS_PACKAGES}", "bookworm", str(staging / "rootfs"), mirror])
            interpreter = _interpreter(staging / "rootfs")
            version = re.search(r"python(\d+\.\d+)$", interpreter).group(1)
            pins = host_pins()
            say(f"{self.name}: aarch64 wheels for Python {version}: " + ", ".join(f"{k}=={v}" for k, v in pins.items()))
            _pip_aarch64(staging / "site", version, pins)
            say(f"{self.name}: building the a64count TCG plugin against the installed qemu-user's source")
            qemu = _build_plugin(staging)
            key = _key(pins, version, qemu)
            (staging / "env.json").write_text(json.dumps({
                "name": self.name, "python": version, "interpreter": interpreter, "qemu": qemu, "packages": pins,
                "key": key, "rootfs_packages": ROOTFS_PACKAGES}, indent=2))
        say(f"{self.name}: ready at {self.path}")
        return self.status()


# -- steps --------------------------------------------------------------------------------------------------
def _require_tools() -> None:
    missing = [tool for tool in ("qemu-aarch64", "mmdebstrap", "gcc", "pkg-config", "apt-get", "tar")
               if shutil.which(tool) is None]
    if not missing and subprocess.run(["pkg-config", "--exists", "glib-2.0"]).returncode != 0:
        missing.append("glib-2.0 headers")
    if missing:
        raise MissingDependency(f"{', '.join(missing)} (to make the aarch64 environment)", SYSTEM_INSTALL)
    help_text = subprocess.run(["qemu-aarch64", "-h"], capture_output=True, text=True).stdout
    if "-plugin" not in help_text:
        raise MissingDependency("a qemu-aarch64 that loads plugins (qemu-user-static cannot)", SYSTEM_INSTALL)


def _debian_sources() -> list[dict]:
    """The host's Debian deb822 sources (Types, URIs, Suites, Components, Signed-By)."""
    entries = []
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for block in path.read_text().split("\n\n"):
            fields = dict(line.split(":", 1) for line in block.splitlines() if ":" in line and not line.startswith("#"))
            fields = {k.strip(): v.strip() for k, v in fields.items()}
            if fields.get("URIs"):
                entries.append(fields)
    return entries


def _debian_mirror() -> str:
    for entry in _debian_sources():
        if "bookworm" in entry.get("Suites", "").split():
            return entry["URIs"].split()[0]
    return DEFAULT_MIRROR


def _interpreter(rootfs: Path) -> str:
    found = sorted(p for p in (rootfs / "usr" / "bin").glob("python3.*") if re.fullmatch(r"python3\.\d+", p.name))
    if not found:
        raise EnvCreateFailed(f"no python3 in the arm64 userland at {rootfs}")
    return str(found[-1].relative_to(rootfs))


def _pip_aarch64(target: Path, python_version: str, pins: dict[str, str]) -> None:
    # manylinux2014 alone makes pip pick onnxruntime 1.16 (its last manylinux2014 wheel) without a word:
    # every tag up to the userland's glibc (2.36), with exact pins so a wrong tag fails loudly
    platforms = ["--platform", "manylinux2014_aarch64"]
    for minor in range(17, 37):
        platforms += ["--platform", f"manylinux_2_{minor}_aarch64"]
    run_step([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--only-binary=:all:",
          *platforms, "--python-version", python_version, "--implementation", "cp",
          "--abi", f"cp{python_version.replace('.', '')}", "--abi", "abi3", "--abi", "none",
          "--target", str(target), *(f"{k}=={v}" for k, v in pins.items())])


def _build_plugin(staging: Path) -> str:
    """Compiles edgeopt/estimate/plugin/a64count.c against qemu-plugin.h from the source package of the
    installed qemu-user (Debian ships neither plugins nor the header). apt runs with private lists and
    sources: the system's apt configuration is not touched."""
    version = run_step(["dpkg-query", "-W", "-f=${source:Version}", "qemu-user"]).stdout.strip()
    apt = staging / "apt"
    for folder in ("lists/partial", "cache/archives/partial", "sources", "src"):
        (apt / folder).mkdir(parents=True, exist_ok=True)
    blocks = []
    for entry in _debian_sources():
        lines = [f"{k}: {v}" for k, v in entry.items() if k != "Types"]
        blocks.append("Types: deb-src\n" + "\n".join(lines))
    (apt / "sources" / "src.sources").write_text("\n\n".join(blocks) + "\n")
    options = ["-o", "Dir::Etc::SourceList=/dev/null", "-o", f"Dir::Etc::SourceParts={apt / 'sources'}",
               "-o", f"Dir::State::Lists={apt / 'lists'}", "-o", f"Dir::Cache={apt / 'cache'}",
               "-o", "APT::Sandbox::User=root"]
    run_step(["apt-get", *options, "update", "-qq"])
    run_step(["apt-get", *options, "source", "-qq", "--download-only", f"qemu={version}"], cwd=apt / "src")
    tarball = next((apt / "src").glob("qemu_*.orig.tar.xz"))
    run_step(["tar", "xJf", str(tarball), "-C", str(apt / "src"), "--wildcards", "*/include/qemu/qemu-plugin.h"])
    header = next((apt / "src").glob("*/include/qemu/qemu-plugin.h"))
    source = Path(__file__).resolve().parent.parent / "estimate" / "plugin" / "a64count.c"
    (staging / "plugin").mkdir()
    glib = run_step(["pkg-config", "--cflags", "--libs", "glib-2.0"]).stdout.split()
    run_step(["gcc", "-O2", "-fPIC", "-shared", f"-I{header.parent}", "-o", str(staging / "plugin" / "liba64count.so"),
          str(source), *glib])
    shutil.copy2(source, staging / "plugin" / "a64count.c")  # the source beside the binary (GPL-2.0-or-later)
    shutil.rmtree(apt)
    return version


def _key(pins: dict, python_version: str, qemu: str) -> str:
    from edgeopt.hashing import value_digest

    return value_digest({"packages": pins, "python": python_version, "qemu": qemu, "rootfs": ROOTFS_PACKAGES})
