"""Text lines rendered with PIL, half of them turned upside down, for PaddleOCR's text-orientation classifier
(a MobileNetV3 that rapidocr-onnxruntime ships): the labels are known by construction.

The classifier takes 48x192 RGB lines, pixels scaled to [-1, 1]; output 0 is "upright" (0°), 1 "upside
down" (180°). A kiosk or document scanner runs it before OCR, to turn photographed labels the right way up.
"""

from __future__ import annotations

import importlib.util
import random
import re
from pathlib import Path

import numpy as np

HEIGHT, WIDTH = 48, 192
TEXT_SOURCE = Path("/usr/share/common-licenses/GPL-3")


def model_path() -> Path:
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None:
        raise FileNotFoundError("rapidocr-onnxruntime is not installed: pip install rapidocr-onnxruntime==1.4.4")
    return Path(list(spec.submodule_search_locations)[0]) / "models" / "ch_ppocr_mobile_v2.0_cls_infer.onnx"


def phrases(count: int, seed: int) -> list[str]:
    words = re.findall(r"[A-Za-z]{3,10}", TEXT_SOURCE.read_text())
    rng = random.Random(seed)
    result = []
    while len(result) < count:
        phrase = " ".join(rng.choice(words) for _ in range(rng.randint(1, 3)))
        if 6 <= len(phrase) <= 14:  # fills most of a 192-pixel line at this size, as a cropped text box does
            result.append(phrase)
    return result


def render(text: str, upside_down: bool, font_size: int = 26) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=font_size)  # Pillow's built-in scalable font: no font package needed
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    ImageDraw.Draw(image).text((4, (HEIGHT - font_size) // 2 - 2), text, fill="black", font=font)
    if upside_down:
        image = image.rotate(180)
    pixels = np.asarray(image, dtype=np.float32) / 255.0
    return ((pixels - 0.5) / 0.5).transpose(2, 0, 1)


def load(count: int = 200, seed: int = 0) -> dict:
    """The manifest's data hook: {'inputs': {'x': [N, 3, 48, 192]}, 'labels': [N]} (0 upright, 1 upside down)."""
    rng = random.Random(seed + 1000)
    texts = phrases(count, seed)
    flipped = [rng.random() < 0.5 for _ in texts]
    images = np.stack([render(text, turn) for text, turn in zip(texts, flipped)])
    return {"inputs": {"x": images}, "labels": np.asarray(flipped, dtype=np.int64)}
