"""Train a small CNN on Fashion-MNIST (a couple of minutes on 2 CPU cores) and export it to ONNX.

Usage: python examples/fashion-mnist/train.py [--epochs 2] [--out examples/fashion-mnist/model/fashion_cnn.onnx]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fashion_data import read_split

HERE = Path(__file__).resolve().parent


def make_model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 256), nn.ReLU(), nn.Linear(256, 10),
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=HERE / "model" / "fashion_cnn.onnx")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    images, labels = read_split("train")
    x, y = torch.from_numpy(images), torch.from_numpy(labels)
    model = make_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    started = time.time()
    for epoch in range(args.epochs):
        order = torch.randperm(len(x))
        model.train()
        for i in range(0, len(x), 128):
            batch = order[i:i + 128]
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
            loss.backward()
            optimizer.step()
        print(f"epoch {epoch + 1}: loss {loss.item():.3f} ({time.time() - started:.0f} s)", flush=True)
    model.eval()
    test_images, test_labels = read_split("t10k")
    with torch.no_grad():
        predicted = model(torch.from_numpy(test_images)).argmax(1).numpy()
    print(f"torch test accuracy: {(predicted == test_labels).mean():.4f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    batch = torch.export.Dim("batch")
    program = torch.onnx.export(model, (x[:2],), dynamo=True, input_names=["image"], output_names=["logits"],
                                dynamic_shapes=({0: batch},))
    program.save(str(args.out))
    import onnxruntime

    session = onnxruntime.InferenceSession(str(args.out), providers=["CPUExecutionProvider"])
    onnx_out = session.run(None, {"image": test_images[:64]})[0]
    with torch.no_grad():
        torch_out = model(torch.from_numpy(test_images[:64])).numpy()
    print(f"exported {args.out} (max abs difference vs torch: {np.abs(onnx_out - torch_out).max():.2e})")


if __name__ == "__main__":
    main()
