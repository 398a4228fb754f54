"""Run this package's MLX model with mlx-lm alone (no edgeopt needed on the device).

    pip install mlx-lm                   # macOS on Apple silicon; on Linux: pip install 'mlx-lm[cpu]'
    python run_example.py                # a short chat turn, timed
    python run_example.py --prompt "..." # your own prompt
    python run_example.py --check        # load, generate 4 tokens; exit status 0 when the model runs

On iOS/macOS apps the model/ folder (safetensors + config.json + tokenizer) loads with MLX Swift.
"""

import argparse
import pathlib
import time

from mlx_lm import generate, load

HERE = pathlib.Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompt", default="What is the capital of France?")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    model, tokenizer = load(str(HERE / "model"))
    if args.check:
        text = generate(model, tokenizer, args.prompt, max_tokens=4)
        print(f"generated: {text!r}")
        return 0
    prompt = args.prompt
    if getattr(tokenizer, "chat_template", None):
        prompt = tokenizer.apply_chat_template([{"role": "user", "content": args.prompt}], add_generation_prompt=True,
                                               tokenize=False)
    started = time.perf_counter()
    text = generate(model, tokenizer, prompt, max_tokens=64)
    print(text)
    print(f"{time.perf_counter() - started:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
