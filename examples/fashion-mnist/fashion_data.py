"""Fashion-MNIST from Debian's dataset-fashion-mnist package (idx files; no download)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

DATA_DIR = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]


def read_split(split: str) -> tuple[np.ndarray, np.ndarray]:
    """split: 'train' or 't10k'. Images as float32 [N, 1, 28, 28] in [0, 1], labels int64."""
    images_path = DATA_DIR / f"{split}-images-idx3-ubyte.gz"
    if not images_path.exists():
        raise FileNotFoundError(f"{images_path} is missing: apt-get install dataset-fashion-mnist")
    with gzip.open(images_path) as f:
        images = np.frombuffer(f.read(), dtype=np.uint8, offset=16).reshape(-1, 1, 28, 28)
    with gzip.open(DATA_DIR / f"{split}-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), dtype=np.uint8, offset=8).astype(np.int64)
    return images.astype(np.float32) / 255.0, labels


def load(split: str = "t10k", start: int = 0, count: int = 1000) -> dict:
    """The manifest's data hook: {'inputs': {'image': ...}, 'labels': ...}."""
    images, labels = read_split(split)
    return {"inputs": {"image": images[start:start + count]}, "labels": labels[start:start + count]}
