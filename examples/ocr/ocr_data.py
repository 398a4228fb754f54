"""Text lines rendered with PIL (so the labels are known by construction) and CTC decoding for PP-OCRv4.

The recognition model is the PP-OCRv4 one shipped in rapidocr-onnxruntime; its character set is stored
in the model's metadata ('character'), one symbol per line; index 0 is the CTC blank, the last a space.
"""

from __future__ import annotations

import functools
import importlib.util
import random
import re
from pathlib import Path

import numpy as np

HEIGHT, WIDTH = 48, 320
TEXT_SOURCE = Path("/usr/share/common-licenses/Apache-2.0")


def model_path() -> Path:
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None:
        raise FileNotFoundError("rapidocr-onnxruntime is not installed: pip install rapidocr-onnxruntime==1.4.4")
    return Path(list(spec.submodule_search_locations)[0]) / "models" / "ch_PP-OCRv4_rec_infer.onnx"


def phrases(count: int, seed: int) -> list[str]:
    words = re.findall(r"[A-Za-z0-9]{2,12}", TEXT_SOURCE.read_text())
    rng = random.Random(seed)
    result = []
    while len(result) < count:
        phrase = " ".join(rng.choice(words) for _ in range(rng.randint(1, 3)))
        if len(phrase) <= 22:  # fits the 320-pixel line at this font size
            result.append(phrase)
    return result


def render(text: str, font_size: int = 30) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=font_size)  # Pillow's built-in scalable font: no font package needed
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    ImageDraw.Draw(image).text((6, (HEIGHT - font_size) // 2 - 2), text, fill="black", font=font)
    pixels = np.asarray(image, dtype=np.float32)[:, :, ::-1] / 255.0  # BGR, as PaddleOCR feeds it
    return ((pixels - 0.5) / 0.5).transpose(2, 0, 1)


def load(count: int = 64, seed: int = 0) -> dict:
    """The manifest's data hook: {'inputs': {'x': [N, 3, 48, 320]}, 'labels': [N] strings}."""
    texts = phrases(count, seed)
    return {"inputs": {"x": np.stack([render(t) for t in texts])}, "labels": np.asarray(texts)}


@functools.lru_cache(maxsize=1)
def characters() -> list[str]:
    import onnx

    model = onnx.load(str(model_path()), load_external_data=False)
    meta = {p.key: p.value for p in model.metadata_props}
    return ["<blank>", *meta["character"].splitlines(), " "]


def decode(probabilities: np.ndarray) -> list[str]:
    """Greedy CTC: best symbol per time step, merge repeats, drop blanks."""
    symbols = characters()
    texts = []
    for row in probabilities.argmax(axis=-1):
        kept = [index for i, index in enumerate(row) if index != 0 and (i == 0 or index != row[i - 1])]
        texts.append("".join(symbols[i] for i in kept).strip())  # padding reads as trailing spaces
    return texts
