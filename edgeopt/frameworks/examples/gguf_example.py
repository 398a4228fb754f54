"""Run this package's GGUF model with llama.cpp alone (no edgeopt needed on the device).

    pip install llama-cpp-python         # the version range is in edgeopt-artifact.json
    python run_example.py                # a short chat turn (the GGUF's own chat template), timed
    python run_example.py --prompt "..." # your own prompt
    python run_example.py --check        # load, generate 4 tokens; exit status 0 when the model runs

The same model.gguf runs in llama.cpp's own tools (llama-cli -m model/model.gguf) and Android apps.
"""

import argparse
import json
import pathlib
import time

from llama_cpp import Llama

HERE = pathlib.Path(__file__).resolve().parent
SPEC = json.loads((HERE / "edgeopt-artifact.json").read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompt", default="What is the capital of France?")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    runtime = SPEC.get("runtime_config", {})
    llm = Llama(model_path=str(HERE / SPEC["model"]["path"]), n_ctx=512, n_threads=runtime.get("n_threads"),
                verbose=False)
    if args.check:
        out = llm.create_completion(args.prompt, max_tokens=4, temperature=0.0)
        print(f"generated {out['usage']['completion_tokens']} tokens: {out['choices'][0]['text']!r}")
        return 0
    started = time.perf_counter()
    reply = llm.create_chat_completion(messages=[{"role": "user", "content": args.prompt}], max_tokens=64,
                                       temperature=0.0)
    seconds = time.perf_counter() - started
    print(reply["choices"][0]["message"]["content"])
    print(f"{reply['usage']['completion_tokens']} tokens in {seconds:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
