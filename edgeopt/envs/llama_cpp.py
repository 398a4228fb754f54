"""llama.cpp's own Hugging Face → GGUF converter, at the llama.cpp commit the installed llama-cpp-python vendors.

The llama-cpp-python wheel carries no converter; its source release does (vendor/llama.cpp). `edgeopt env create
llama.cpp` fetches that release of the installed version from the package index and keeps the converter, the
model classes it imports and its own gguf-py under ~/.cache/edgeopt/envs/llama.cpp, so the GGUF files edgeopt
writes carry the tokenizer metadata (pre-tokenizer, add-BOS, special tokens) llama.cpp itself would write.
It runs with edgeopt's interpreter (it needs torch, transformers and numpy, which the `hf` extra installs).
"""

from __future__ import annotations

import json
import sys
import tarfile
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
        return EnvStatus(self.name, self.path, True, f"convert_hf_to_gguf.py from {DISTRIBUTION} {made_from}'s "
                         "source release", info["packages"], info["key"])

    def converter(self) -> Path:
        return self.path / "convert_hf_to_gguf.py"

    def create(self, say: Callable[[str], None] = print, force: bool = False) -> EnvStatus:
        version = installed_version()
        if version is None:
            raise MissingDependency(f"{DISTRIBUTION} (its source release holds llama.cpp's converter)",
                                    "pip install 'edgeopt[gguf]'")
        if self.status().present and not force:
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
            remove_folder(download)
            from edgeopt.hashing import value_digest

            packages = {DISTRIBUTION: version}
            (staging / "env.json").write_text(json.dumps({
                "name": self.name, "packages": packages, "files": kept,
                "key": value_digest({"packages": packages, "files": kept})}, indent=2))
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
