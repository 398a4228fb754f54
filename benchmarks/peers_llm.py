"""SmolLM2: edgeopt's GGUF files against llama.cpp's own, perplexity read by llama.cpp's llama-perplexity (its own
tokenization of the text) and generation speed timed side by side, in interleaved rounds, with edgeopt's timing code.

llama.cpp's own files are made once with llama.cpp's own tools, the commands its README shows (this script installs
nothing: the converter and llama-quantize / llama-perplexity come from `edgeopt env create llama.cpp`, built from the
source release of the installed llama-cpp-python):

  llama.cpp-f16       python convert_hf_to_gguf.py MODEL --outtype f16 --outfile F16
  llama.cpp-q4_k_m    llama-quantize F16 Q4_K_M.gguf Q4_K_M
  llama.cpp-q4_0      llama-quantize F16 Q4_0.gguf Q4_0

Perplexity: `llama-perplexity -c CONTEXT` on two texts: `scored` is the first llm.eval_tokens tokens of the evaluation
text (the tokens edgeopt scores, which no importance matrix is fitted on); `held-out` is a text the build never read
(default /usr/share/common-licenses/GPL-2). Generation: every variant's timing session stays open; each round times
one window per variant (the manifest's prompts and max_new_tokens), in an order rotated each round; the speed is
1000 / the median interval between generated tokens, and a ratio is taken to llama.cpp's Q4_K_M in the same round.

Usage:
  python examples/smollm2/prepare.py
  edgeopt build examples/smollm2/manifest.yaml --target host --out BUILD
  python benchmarks/peers_llm.py --manifest examples/smollm2/manifest.yaml --build BUILD --peers DIR
                                                                  # -> benchmarks/results/peers-smollm2.json

Measured (benchmarks/results/peers-smollm2.json: 2 vCPU AMD EPYC with AVX-512 VNNI/BF16, no AMX, 12 rounds): edgeopt's
gguf-iq4_nl-imatrix-mixed, 39% of the F16 file, is +1.7% / +2.2% over F16's perplexity (scored / held-out) at 1.19x
[IQR 1.185-1.193] the generation speed of llama.cpp's own Q4_K_M, which is +2.6% / +12.7% (an earlier run on a 2 vCPU
Intel Xeon with AMX: +1.7% / +2.3% at 1.22x [1.16-1.24]). Q5_K_M is worse than Q4_K_M on this model (+12.4% / +18.9%),
llama.cpp's own Q5_K_M file too (21.660 scored): SmolLM's 576-wide rows take its Q5_1 fallback.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
REFERENCE = "llama.cpp-q4_k_m"  # the file the goal names: edgeopt's 4-bit file against llama.cpp's own
F16_SHARE = 0.60  # a "4-bit-class" file is at most this share of the F16 file


def _env():
    from edgeopt.envs import LLAMA_CPP, environment

    env = environment(LLAMA_CPP, os.environ)
    env.require()
    return env


def _run(command: list[str]) -> str:
    completed = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"})
    if completed.returncode != 0:
        raise RuntimeError(f"{Path(command[0]).name} exited with {completed.returncode}: "
                           + " | ".join((completed.stderr or completed.stdout).strip().splitlines()[-4:]))
    return completed.stdout + completed.stderr


def build_peers(model: Path, peers: Path) -> dict[str, Path]:
    env = _env()
    peers.mkdir(parents=True, exist_ok=True)
    f16 = peers / "llama.cpp-f16.gguf"
    if not f16.is_file():
        _run([sys.executable, str(env.converter()), str(model), "--outtype", "f16", "--outfile", str(f16)])
    made = {"llama.cpp-f16": f16}
    for kind in ("Q4_K_M", "Q4_0"):
        out = peers / f"llama.cpp-{kind.lower()}.gguf"
        if not out.is_file():
            _run([str(env.tool("llama-quantize")), str(f16), str(out), kind, str(os.cpu_count() or 1)])
        made[f"llama.cpp-{kind.lower()}"] = out
    return made


def perplexity(model: Path, text: Path, context: int, threads: int) -> dict:
    output = _run([str(_env().tool("llama-perplexity")), "-m", str(model), "-f", str(text), "-c", str(context),
                   "-t", str(threads)])
    found = re.search(r"Final estimate: PPL = ([0-9.]+) \+/- ([0-9.]+)", output)
    chunks = re.search(r"calculating perplexity over (\d+) chunks", output)
    if not found:
        raise RuntimeError(f"llama-perplexity printed no final estimate for {model.name}")
    return {"ppl": float(found.group(1)), "error": float(found.group(2)),
            "chunks": int(chunks.group(1)) if chunks else None}


def scored_text(model: Path, text: Path, tokens: int, out: Path) -> Path:
    """The first `tokens` tokens of `text` as llama.cpp tokenizes them, written back as text."""
    from edgeopt.frameworks.gguf.runtime import llama_cpp

    vocab = llama_cpp().Llama(model_path=str(model), vocab_only=True, verbose=False)
    kept = vocab.tokenize(text.read_bytes(), add_bos=False)[:tokens]
    out.write_bytes(vocab.detokenize(kept))
    return out


def variants(build: Path, peers: dict[str, Path]) -> dict[str, dict]:
    report = json.loads((build / "report.json").read_text())
    found = {"baseline": {"origin": "edgeopt", "path": report["baseline"]["model_path"]}}
    for c in report["candidates"]:
        if c["framework"] == "gguf" and c["status"] == "ok" and c["stage"] == "quantize":
            found[c["id"]] = {"origin": "edgeopt", "path": c["model_path"]}
    for name, path in peers.items():
        found[name] = {"origin": "llama.cpp", "path": str(path)}
    return found


def generation_speed(build: Path, found: dict[str, dict], rounds: int) -> dict[str, list[float]]:
    from edgeopt.artifact import ModelArtifact
    from edgeopt.operations import TimingSession
    from edgeopt.protocol import TimingRequest, WindowRequest

    # the build's own timing request for its baseline: the same prompts, tokens and threads for every variant
    request = TimingRequest.model_validate_json((build / "steps" / "baseline" / "timing" / "request.json").read_text())
    sessions = {name: TimingSession(request.model_copy(update={"artifact": ModelArtifact(
        path=v["path"], format="gguf", framework="gguf")})) for name, v in found.items()}
    window = WindowRequest(warmup_runs=1, min_runs=1, max_runs=1, time_budget_s=0.0)
    names = list(found)
    for name in names:
        sessions[name].window(window)  # warm-up: every file loaded and run once before the first round
    speeds: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            speeds[name].append(1000.0 / float(np.median(sessions[name].window(window).samples_ms)))
    return speeds


def compare(manifest_path: Path, build: Path, peers_dir: Path, rounds: int, held_out: Path) -> dict:
    from edgeopt.hostinfo import detect_host
    from edgeopt.manifest import load_manifest

    manifest = load_manifest(manifest_path)
    source = Path(manifest.model.path)
    if not source.is_absolute():
        source = (manifest_path.parent / source).resolve()
    peers = build_peers(source, peers_dir)
    found = variants(build, peers)
    threads = os.cpu_count() or 1
    scored = scored_text(peers["llama.cpp-f16"], Path(manifest.evaluation.data.path), manifest.llm.eval_tokens,
                         peers_dir / "scored.txt")
    context = manifest.llm.context_length
    results = {}
    for name, variant in found.items():
        path = Path(variant["path"])
        results[name] = {"origin": variant["origin"], "path": str(path), "size_mb": round(path.stat().st_size / 1e6, 1),
                         "ppl_scored": perplexity(path, scored, context, threads),
                         "ppl_held_out": perplexity(path, held_out, context, threads)}
    speeds = generation_speed(build, found, rounds)
    f16 = results["llama.cpp-f16"]
    for name, result in results.items():
        ratios = np.asarray(speeds[name]) / np.asarray(speeds[REFERENCE])
        result.update({
            "tokens_per_s": round(float(np.median(speeds[name])), 1),
            "speed_vs_llama_cpp_q4_k_m": round(float(np.median(ratios)), 3),
            "speed_ratio_iqr": [round(float(q), 3) for q in np.percentile(ratios, [25, 75])],
            "share_of_f16_file": round(result["size_mb"] / f16["size_mb"], 3),
            "ppl_over_f16": {kind: round(result[kind]["ppl"] / f16[kind]["ppl"] - 1, 4)
                             for kind in ("ppl_scored", "ppl_held_out")}})
    host = detect_host()
    return {"model": manifest.name, "build": str(build), "threads": threads,
            "machine": {"cpu": host.cpu_model, "isa": list(host.isa), "cores": host.cores, "ram_gb": host.ram_gb},
            "rounds": rounds, "context": context, "held_out_text": str(held_out),
            "scored_text": f"the first {manifest.llm.eval_tokens} tokens of {manifest.evaluation.data.path}",
            "variants": results, "goal": goal(results)}


def goal(results: dict) -> dict:
    """The issue's bar: a 4-bit-class file (<= 60% of F16) within 3% of F16's perplexity, generating at least as fast
    as llama.cpp's own Q4_K_M. Each edgeopt file is judged on both texts."""
    verdicts = {}
    for name, r in results.items():
        if r["origin"] != "edgeopt" or r["share_of_f16_file"] > F16_SHARE:
            continue
        verdicts[name] = {"within_3pct_scored": r["ppl_over_f16"]["ppl_scored"] <= 0.03,
                          "within_3pct_held_out": r["ppl_over_f16"]["ppl_held_out"] <= 0.03,
                          "speed_vs_llama_cpp_q4_k_m": r["speed_vs_llama_cpp_q4_k_m"]}
    return {"reference": REFERENCE, "f16_share_at_most": F16_SHARE, "files": verdicts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--build", type=Path, required=True, help="an edgeopt build folder of that manifest")
    parser.add_argument("--peers", type=Path, required=True, help="where llama.cpp's own files are made (once)")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--held-out", type=Path, default=Path("/usr/share/common-licenses/GPL-2"))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "peers-smollm2.json")
    args = parser.parse_args()
    started = time.perf_counter()
    result = compare(args.manifest, args.build, args.peers, args.rounds, args.held_out)
    result["seconds"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    for name, r in result["variants"].items():
        print(f"{name:28} {r['origin']:9} {r['size_mb']:7.1f} MB  ppl scored {r['ppl_scored']['ppl']:8.3f} "
              f"({r['ppl_over_f16']['ppl_scored']:+.1%})  held-out {r['ppl_held_out']['ppl']:8.3f} "
              f"({r['ppl_over_f16']['ppl_held_out']:+.1%})  {r['tokens_per_s']:6.1f} tok/s "
              f"({r['speed_vs_llama_cpp_q4_k_m']:.2f}x llama.cpp Q4_K_M)")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
