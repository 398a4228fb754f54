"""llama.cpp's importance matrix: how strongly calibration text activates each weight column, computed by
llama-imatrix, and the quantization that weighs each weight's rounding error by it (llama-quantize --imatrix).

Both are llama.cpp's own tools, built by `edgeopt env create llama.cpp` from the source of the installed
llama-cpp-python: the Python binding's quantizer cannot take an importance matrix (its parameter is a pointer to a
C++ map), and the tools are at the same llama.cpp commit as the runtime that measures the file.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from edgeopt.frameworks.gguf.runtime import llama_cpp


def computed_once(folder: Path, key: str, make: Callable[[Path], None]) -> tuple[Path, bool]:
    """The importance matrix `key` names, made by `make(path)` only if no step of this build made it before: three
    imatrix file types read one matrix, and llama-imatrix is the slow half of each (a minute on a 135M model here).
    Steps may run at once, so the first takes a lock and the others wait for its file. A failed `make` leaves no
    file behind, and the next step tries again. Returns the matrix and whether it was already there."""
    folder.mkdir(parents=True, exist_ok=True)
    matrix = folder / f"imatrix-{key}.gguf"
    with open(folder / f".imatrix-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also when the process dies
        if matrix.is_file():
            return matrix, True
        partial = folder / f".partial-imatrix-{key}.gguf"
        partial.unlink(missing_ok=True)
        try:
            make(partial)
            partial.replace(matrix)  # whole or absent: a reader never sees half a matrix
        finally:
            partial.unlink(missing_ok=True)
    return matrix, False


def calibration_text(model: Path, text: Path, skip_tokens: int, context: int, out: Path) -> dict:
    """Writes the text llama-imatrix reads to `out`: `text` past its first `skip_tokens` tokens (tokenized as the
    evaluation tokenizes it, so the tokens perplexity scores are never the ones fitted on)."""
    vocab = llama_cpp().Llama(model_path=str(model), vocab_only=True, verbose=False)
    tokens = vocab.tokenize(text.read_bytes(), add_bos=True)
    kept = tokens[skip_tokens:]
    if len(kept) < 2 * context:  # llama-imatrix needs two chunks at the least
        where = (f"after the {skip_tokens} tokens the evaluation scores" if skip_tokens else "")
        raise ValueError(f"{text} holds {len(kept)} tokens {where}; the importance matrix needs at least {2 * context} "
                         f"(2 chunks of {context}): name a longer text as calibration.data in the manifest")
    out.write_bytes(vocab.detokenize(kept))
    return {"calibration_tokens": len(kept), "skipped_tokens": skip_tokens, "chunks": len(kept) // context,
            "context": context}


def compute(tool: Path, model: Path, text: Path, out: Path, context: int, threads: int) -> float:
    """Runs llama-imatrix; returns its seconds."""
    started = time.perf_counter()
    _run([str(tool), "-m", str(model), "-f", str(text), "-o", str(out), "-c", str(context), "-t", str(threads),
          "--no-ppl"], "llama-imatrix")
    if not out.is_file():
        raise RuntimeError(f"llama-imatrix wrote no {out.name}")
    return time.perf_counter() - started


def quantize(tool: Path, model: Path, out: Path, file_type: str, imatrix: Path | None, threads: int,
             allow_requantize: bool, leave_output_tensor: bool, tensor_types: dict[str, str]) -> None:
    """llama-quantize: the file type, with the importance matrix when there is one and the tensors named in
    `tensor_types` (names or patterns) in the type given for each."""
    command = [str(tool), *(["--imatrix", str(imatrix)] if imatrix else [])]
    for name, kind in tensor_types.items():
        command += ["--tensor-type", f"{name}={kind}"]
    command += ["--allow-requantize"] if allow_requantize else []
    command += ["--leave-output-tensor"] if leave_output_tensor else []
    _run([*command, str(model), str(out), file_type, str(threads)], "llama-quantize")
    if not out.is_file():
        raise RuntimeError(f"llama-quantize wrote no {out.name}")


def _run(command: list[str], name: str) -> None:
    completed = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"})
    if completed.returncode != 0:
        tail = (completed.stderr.strip() or completed.stdout.strip()).splitlines()[-4:]
        raise RuntimeError(f"{name} exited with {completed.returncode}: " + " | ".join(tail))
