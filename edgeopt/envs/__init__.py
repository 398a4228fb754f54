"""Environments edgeopt prepares beside its own, each made by `edgeopt env create NAME`:

  aarch64    the arm64 userland that runs the runtimes' ARM builds under qemu-user (envs/aarch64.py)
  llama.cpp  llama.cpp's own Hugging Face → GGUF converter, from the source release of the installed
             llama-cpp-python (envs/llama_cpp.py)
  rknn       a virtual environment with rknn-toolkit2 and its pins, where RKNN passes and its simulator run
             (envs/backend.py, envs/requirements/rknn.txt)
  olive      a virtual environment with olive-ai, where Olive workflows run (envs/requirements/olive.txt)
"""

from __future__ import annotations

from collections.abc import Mapping

from edgeopt.envs.aarch64 import AARCH64, Aarch64Env
from edgeopt.envs.base import EnvCreateFailed, EnvStatus, create_command, env_root
from edgeopt.envs.llama_cpp import LLAMA_CPP, LlamaCppEnv
from edgeopt.envs.olive import OLIVE, OliveEnv
from edgeopt.envs.rknn import RKNN, RknnEnv
from edgeopt.errors import UsageError

_KINDS = {AARCH64: Aarch64Env, LLAMA_CPP: LlamaCppEnv, RKNN: RknnEnv, OLIVE: OliveEnv}
ENV_NAMES = tuple(_KINDS)


def environment(name: str, environ: Mapping[str, str]):
    if name not in _KINDS:
        from edgeopt.errors import closest

        near = closest(name, ENV_NAMES)
        raise UsageError(f"unknown environment {name!r}; known: {', '.join(ENV_NAMES)}"
                         + (f" (did you mean {near[0]}?)" if near else ""))
    return _KINDS[name](env_root(environ))


__all__ = ["AARCH64", "ENV_NAMES", "LLAMA_CPP", "OLIVE", "RKNN", "EnvCreateFailed", "EnvStatus", "create_command", "environment"]
