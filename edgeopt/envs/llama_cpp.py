"""llama.cpp's own Hugging Face → GGUF converter and its importance-matrix tools, at the llama.cpp commit the
installed llama-cpp-python vendors.

The llama-cpp-python wheel carries no converter and no tools; its source release does (vendor/llama.cpp). `edgeopt
env create llama.cpp` fetches that release of the installed version from the package index and keeps, under
~/.cache/edgeopt/envs/llama.cpp:
- the converter, the model classes it imports and its own gguf-py, so the GGUF files edgeopt writes carry the
  tokenizer metadata (pre-tokenizer, add-BOS, special tokens) llama.cpp itself would write. It runs with edgeopt's
  interpreter (it needs torch, transformers and numpy, which the `hf` extra installs);
- llama-imatrix and llama-quantize (and llama-perplexity, to read a file's perplexity the way llama.cpp reports it),
  built from the same source with cmake: the Python binding cannot pass an importance matrix to the quantizer (its
  `imatrix` parameter is a pointer to a C++ map). Portable flags (GGML_NATIVE=OFF: AVX2/FMA/F16C), never
  -march=native, so the environment a cache or CI image carries runs on the next machine too. Without cmake and a
  C++ compiler the converter is still kept and the tools are said to be missing.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tarfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from edgeopt.envs.base import (
    EnvCreateFailed,
    Environment,
    EnvStatus,
    create_command,
    remove_folder,
    run_step,
    staged,
)
from edgeopt.errors import MissingDependency

LLAMA_CPP = "llama.cpp"
DISTRIBUTION = "llama-cpp-python"
# what the converter imports, under vendor/llama.cpp/ in the source release; LICENSE travels with it (MIT)
KEPT = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/", "LICENSE")
TOOLS = ("llama-imatrix", "llama-quantize", "llama-perplexity")
# the wheel's own flags (Makefile: llama-wheel); static, so the binaries move with the folder
CMAKE_OPTIONS = ("-DCMAKE_BUILD_TYPE=Release", "-DGGML_NATIVE=OFF", "-DBUILD_SHARED_LIBS=OFF",
                 "-DLLAMA_BUILD_TOOLS=ON", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
                 "-DLLAMA_BUILD_SERVER=OFF", "-DLLAMA_BUILD_APP=OFF", "-DLLAMA_OPENSSL=OFF")


def installed_version() -> str | None:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return None


class LlamaCppEnv(Environment):
    name = LLAMA_CPP
    describes = "llama.cpp's converter"

    def status(self) -> EnvStatus:
        info = self._recorded()
        if info is None:
            return self._not_created()
        made_from, wanted = info["packages"][DISTRIBUTION], installed_version()
        if wanted is not None and made_from != wanted:
            return EnvStatus(self.name, self.path, False, f"made from {DISTRIBUTION} {made_from}, but {wanted} is "
                             f"installed; run `{create_command(self.name)} --force`", info["packages"], info["key"])
        tools = info.get("tools", {})
        built = (f"; {', '.join(sorted(tools['built']))} built ({tools['flags']})" if tools.get("built")
                 else f"; tools not built: {tools.get('why_not', 'made by an older edgeopt')}")
        return EnvStatus(self.name, self.path, True, f"convert_hf_to_gguf.py from {DISTRIBUTION} {made_from}'s "
                         "source release" + built, info["packages"], info["key"])

    def converter(self) -> Path:
        return self.path / "convert_hf_to_gguf.py"

    def tool(self, name: str) -> Path:
        """The path of one of TOOLS; MissingDependency (with the command that builds it) when it is not there."""
        path = self.path / "bin" / name
        if not path.is_file():
            status = self.status()
            raise MissingDependency(f"llama.cpp's {name} ({status.detail})",
                                    f"{create_command(self.name)}" + (" --force" if status.present else ""))
        return path

    def create(self, say: Callable[[str], None] = print, force: bool = False) -> EnvStatus:
        version = installed_version()
        if version is None:
            raise MissingDependency(f"{DISTRIBUTION} (its source release holds llama.cpp's converter)",
                                    "pip install 'edgeopt[gguf]'")
        info = self._recorded()
        if self.status().present and not force and (info.get("tools") or {}).get("built"):
            say(f"{self.name}: already present at {self.path} (--force makes it again)")
            return self.status()
        with staged(self.path) as staging:
            say(f"{self.name}: {DISTRIBUTION} {version}'s source release from the package index")
            download = staging / "download"
            run_step([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
                      "--no-binary", ":all:", f"{DISTRIBUTION}=={version}", "-d", str(download)])
            archive = next(download.glob("*.tar.gz"), None)
            if archive is None:
                raise EnvCreateFailed(f"pip download of {DISTRIBUTION}=={version} left no source archive")
            kept = _extract_converter(archive, staging)
            tools = _build_tools(archive, staging, say)
            remove_folder(download)
            from edgeopt.hashing import value_digest

            packages = {DISTRIBUTION: version}
            (staging / "env.json").write_text(json.dumps({
                "name": self.name, "packages": packages, "files": kept, "tools": tools,
                "key": value_digest({"packages": packages, "files": kept, "tools": tools.get("built")})}, indent=2))
        say(f"{self.name}: ready at {self.path}")
        return self.status()



def _extract_converter(archive: Path, into: Path) -> int:
    """Unpacks only what the converter needs from vendor/llama.cpp/; returns how many files."""
    count = 0
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            _, _, inside = member.name.partition("/vendor/llama.cpp/")
            if not inside or not member.isfile() or not any(
                    inside == kept or inside.startswith(kept) for kept in KEPT if kept):
                continue
            target = into / inside
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(tar.extractfile(member).read())
            count += 1
    if not (into / "convert_hf_to_gguf.py").is_file():
        raise EnvCreateFailed(f"{archive.name} has no vendor/llama.cpp/convert_hf_to_gguf.py")
    return count


def _build_tools(archive: Path, into: Path, say: Callable[[str], None]) -> dict:
    """Builds TOOLS from the archive's vendor/llama.cpp into `into`/bin; what was built, or why not."""
    cmake, compiler = shutil.which("cmake"), shutil.which("c++") or shutil.which("g++")
    if cmake is None or compiler is None:
        why = "cmake and a C++ compiler are needed (Debian: apt-get install cmake g++)"
        say(f"{LLAMA_CPP}: {', '.join(TOOLS)} not built: {why}")
        return {"built": [], "why_not": why}
    source, build = into / "src", into / "build"
    _extract_source(archive, source)
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    say(f"{LLAMA_CPP}: building {', '.join(TOOLS)} from its source (portable flags; a few minutes, once)")
    started = time.monotonic()
    run_step([cmake, "-S", str(source), "-B", str(build), *generator, *CMAKE_OPTIONS])
    run_step([cmake, "--build", str(build), "--target", *TOOLS, "-j", str(os.cpu_count() or 1)])
    (into / "bin").mkdir()
    for tool in TOOLS:
        shutil.copy2(build / "bin" / tool, into / "bin" / tool)
    remove_folder(source)
    remove_folder(build)
    say(f"{LLAMA_CPP}: tools built in {time.monotonic() - started:.0f} s")
    return {"built": list(TOOLS), "flags": " ".join(option for option in CMAKE_OPTIONS if "NATIVE" in option)}


def _extract_source(archive: Path, into: Path) -> None:
    """vendor/llama.cpp/ of the source release, as the tools' build reads it."""
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            _, _, inside = member.name.partition("/vendor/llama.cpp/")
            if not inside or not member.isfile():
                continue
            target = into / inside
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(tar.extractfile(member).read())
            if member.mode & 0o111:
                target.chmod(0o755)
