"""Train a TinyTimeMixer-style forecaster on the Mauna Loa CO2 series (~20 s on 2 CPU cores), export it to ONNX.
Usage: python examples/co2-forecast/train.py [--epochs 60] [--out examples/co2-forecast/model/co2_mixer.onnx]

The model: each window is normalized by its own mean and spread (so it forecasts the shape of the next weeks,
not the level), cut into 13 patches of 8 weeks, mixed across patches and within them by small MLPs (two
blocks), and read out as the next 8 weeks, scaled back to ppm.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from co2_data import CONTEXT, HORIZON, windows

HERE = Path(__file__).resolve().parent
PATCH, WIDTH = 8, 32


class MixerBlock(nn.Module):
    def __init__(self, patches: int, width: int):
        super().__init__()
        self.across = nn.Sequential(nn.Linear(patches, patches * 2), nn.GELU(), nn.Linear(patches * 2, patches))
        self.within = nn.Sequential(nn.Linear(width, width * 2), nn.GELU(), nn.Linear(width * 2, width))
        self.norm_across, self.norm_within = nn.LayerNorm(width), nn.LayerNorm(width)

    def forward(self, x):  # [batch, patches, width]
        x = x + self.across(self.norm_across(x).transpose(1, 2)).transpose(1, 2)
        return x + self.within(self.norm_within(x))


class TinyMixer(nn.Module):
    def __init__(self, context: int = CONTEXT, horizon: int = HORIZON, blocks: int = 2):
        super().__init__()
        self.patches = context // PATCH
        self.embed = nn.Linear(PATCH, WIDTH)
        self.blocks = nn.Sequential(*(MixerBlock(self.patches, WIDTH) for _ in range(blocks)))
        self.head = nn.Linear(self.patches * WIDTH, horizon)

    def forward(self, past):  # [batch, context] ppm → [batch, horizon] ppm
        level = past.mean(dim=1, keepdim=True)
        spread = past.std(dim=1, keepdim=True) + 1e-3
        x = ((past - level) / spread).reshape(past.shape[0], self.patches, PATCH)
        x = self.blocks(self.embed(x))
        return self.head(x.flatten(1)) * spread + level


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--out", type=Path, default=HERE / "model" / "co2_mixer.onnx")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    past, future = (torch.from_numpy(a) for a in windows("train"))
    model = TinyMixer()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    started = time.time()
    for epoch in range(args.epochs):
        order = torch.randperm(len(past))
        model.train()
        for i in range(0, len(past), 64):
            batch = order[i:i + 64]
            optimizer.zero_grad()
            loss = nn.functional.l1_loss(model(past[batch]), future[batch])
            loss.backward()
            optimizer.step()
        if (epoch + 1) % 10 == 0:
            print(f"epoch {epoch + 1}: train MAE {loss.item():.3f} ppm ({time.time() - started:.0f} s)", flush=True)
    model.eval()
    test_past, test_future = windows("test")
    with torch.no_grad():
        forecast = model(torch.from_numpy(test_past)).numpy()
    # what the forecast is worth: a seasonal naive forecast repeats the same weeks a year before, plus the trend
    naive = test_past[:, -52:-52 + HORIZON] + (test_past[:, -1:] - test_past[:, -53:-52])
    print(f"test MAE {np.abs(forecast - test_future).mean():.3f} ppm over {len(test_past)} windows "
          f"(seasonal naive: {np.abs(naive - test_future).mean():.3f} ppm)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    batch = torch.export.Dim("batch")
    program = torch.onnx.export(model, (past[:2],), dynamo=True, input_names=["past"], output_names=["forecast"],
                                dynamic_shapes=({0: batch},))
    program.save(str(args.out))
    import onnxruntime

    session = onnxruntime.InferenceSession(str(args.out), providers=["CPUExecutionProvider"])
    onnx_out = session.run(None, {"past": test_past[:64]})[0]
    print(f"exported {args.out} (max abs difference vs torch: {np.abs(onnx_out - forecast[:64]).max():.2e} ppm)")


if __name__ == "__main__":
    main()
