"""Well-known vision architectures, built from scratch in plain torch, exported to ONNX with ORT variants.

Purpose: count instructions per inference of published architectures under emulation and compare them with
published board latencies. The weights are random (seeded): we measure work, not accuracy. What has to
match the published models is the layer structure, hence the parameter and MAC counts; ``count_macs``
checks the latter on the exported graphs.

Nothing here uses torchvision, ultralytics or any download. The layer structures follow:
  - yolov8n             Ultralytics ``yolov8.yaml`` at scale n (depth 0.33, width 0.25, max channels 1024):
                        Conv(=Conv2d+BN+SiLU), C2f, SPPF, anchor-free Detect head (legacy v8 cv3), DFL
                        (reg_max 16), 80 classes, 640x640; the output is the export's [1, 84, 8400] (DFL softmax,
                        dist2bbox to xywh in pixels, sigmoid class scores), as ``yolo export format=onnx`` gives.
  - mobilenet_v3_large  Howard et al. 2019 / torchvision's MobileNetV3 (width 1.0, 224, hard-swish, SE with
  - mobilenet_v3_small  hard-sigmoid, BN eps 1e-3).
  - mobilenet_v2        Sandler et al. 2018 / torchvision (width 1.0, 224, ReLU6).
  - resnet18            He et al. 2016 / torchvision (BasicBlock [2, 2, 2, 2], 224).

Weights: seeded init as the reference implementations do it (biases the reference zeroes get small random
values: the exporter's optimizer would otherwise drop them), then the BatchNorm running statistics are
estimated on a few seeded random inputs (train-mode forward passes, no gradient) so activations have
realistic magnitudes (no blow-up, no denormals) before the BNs are folded into the convolutions.

API (plain functions):
  ARCHITECTURES                      name -> (builder, input shape, published {params, macs, source})
  build_onnx(name, out_dir, seed=0)  -> Path of the fp32 ONNX (opset 17, batch 1), checked
  variants(fp32_path, out_dir)       -> {"fp32", "int8-dynamic", "int8-static", "fp16"} -> Path
  count_macs(onnx_path)              -> MACs of Conv/Gemm/MatMul (and their integer forms) at static shapes
  count_params(onnx_path)            -> number of elements stored in the graph's initializers (fused weights,
                                        biases and constants such as YOLO's anchors)
  op_histogram(onnx_path)            -> {op_type: count}
  build_model(name, seed) / fuse_bn(model) / torch_param_count(model) / yolo_decode_nodes(onnx_path)

Export: torch.onnx.export(dynamo=True) at its native opset 18, then rewritten as opset 17 here (see
_downgrade_18_to_17: onnx's version converter cannot), exporter metadata stripped (same seed -> same bytes);
the TorchScript exporter (dynamo=False) + onnxscript's optimizer is the fallback if that fails.
Under dynamo, AdaptiveAvgPool2d exports as ReduceMean (TorchScript: GlobalAveragePool) and SiLU as
Sigmoid + Mul, as in Ultralytics' own export.

Usage: python benchmarks/calibration_models.py OUT_DIR [--only yolov8n resnet18 ...] [--seed 0]
builds every architecture (or those named) into OUT_DIR, writes OUT_DIR/summary.json and prints a table.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import logging
import math
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

OPSET = 17
N_CALIBRATION = 8          # random inputs for the int8-static calibration
BN_STAT_BATCHES = 4        # train-mode passes that estimate the BatchNorm statistics
ATOL = RTOL = 1e-3         # ORT vs torch: |ort - torch| <= ATOL + RTOL * |torch|, element-wise
VARIANT_NAMES = ("fp32", "int8-dynamic", "int8-static", "fp16")
EXPORTERS = ("dynamo", "torchscript")  # tried in this order by build_onnx


# --------------------------------------------------------------------------------------------- building blocks
def _make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """torchvision / TF-slim channel rounding."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class ConvNormAct(nn.Module):
    """Conv2d (no bias) + BatchNorm2d + optional activation; ``fuse()`` folds the BN into the conv."""

    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1, p: int | None = None, g: int = 1,
                 act: nn.Module | None = None, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2 if p is None else p, groups=g, bias=False)
        self.bn: nn.Module = nn.BatchNorm2d(c2, eps=eps, momentum=momentum)
        self.act = act if act is not None else nn.Identity()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))

    @torch.no_grad()
    def fuse(self) -> None:
        if not isinstance(self.bn, nn.BatchNorm2d):
            return
        bn, conv = self.bn, self.conv
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                          conv.dilation, conv.groups, bias=True)
        fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        fused.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
        self.conv, self.bn = fused, nn.Identity()


# --------------------------------------------------------------------------------------------- YOLOv8n
def _yolo_conv(c1: int, c2: int, k: int = 1, s: int = 1, g: int = 1) -> ConvNormAct:
    # ultralytics Conv: autopad k//2, BN(eps=1e-3, momentum=0.03) as set by initialize_weights, SiLU
    return ConvNormAct(c1, c2, k, s, g=g, act=nn.SiLU(), eps=1e-3, momentum=0.03)


class Bottleneck(nn.Module):
    def __init__(self, c1: int, c2: int, shortcut: bool = True, e: float = 1.0):
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = _yolo_conv(c1, c_, 3, 1)
        self.cv2 = _yolo_conv(c_, c2, 3, 1)
        self.add = shortcut and c1 == c2

    def forward(self, x):
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C2f(nn.Module):
    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = False, e: float = 0.5):
        super().__init__()
        self.c = int(c2 * e)
        self.cv1 = _yolo_conv(c1, 2 * self.c, 1, 1)
        self.cv2 = _yolo_conv((2 + n) * self.c, c2, 1)
        self.m = nn.ModuleList(Bottleneck(self.c, self.c, shortcut, e=1.0) for _ in range(n))

    def forward(self, x):
        y = list(self.cv1(x).chunk(2, 1))
        y.extend(m(y[-1]) for m in self.m)
        return self.cv2(torch.cat(y, 1))


class SPPF(nn.Module):
    def __init__(self, c1: int, c2: int, k: int = 5):
        super().__init__()
        c_ = c1 // 2
        self.cv1 = _yolo_conv(c1, c_, 1, 1)
        self.cv2 = _yolo_conv(c_ * 4, c2, 1, 1)
        self.m = nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2)

    def forward(self, x):
        y = [self.cv1(x)]
        y.extend(self.m(y[-1]) for _ in range(3))
        return self.cv2(torch.cat(y, 1))


class DFL(nn.Module):
    """Distribution Focal Loss integral: softmax over reg_max bins, expectation by a fixed 1x1 conv."""

    def __init__(self, c1: int = 16):
        super().__init__()
        self.conv = nn.Conv2d(c1, 1, 1, bias=False).requires_grad_(False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.arange(c1, dtype=torch.float).view(1, c1, 1, 1))
        self.c1 = c1

    def forward(self, x):
        b, _, a = x.shape
        return self.conv(x.view(b, 4, self.c1, a).transpose(2, 1).softmax(1)).view(b, 4, a)


def _make_anchors(sizes: list[tuple[int, int]], strides: list[int], offset: float = 0.5):
    points, stride_t = [], []
    for (h, w), s in zip(sizes, strides):
        sx = torch.arange(w, dtype=torch.float) + offset
        sy = torch.arange(h, dtype=torch.float) + offset
        sy, sx = torch.meshgrid(sy, sx, indexing="ij")
        points.append(torch.stack((sx, sy), -1).view(-1, 2))
        stride_t.append(torch.full((h * w, 1), float(s)))
    return torch.cat(points), torch.cat(stride_t)


class Detect(nn.Module):
    """YOLOv8 anchor-free head (legacy v8 cv3), inference/export path: returns [b, 4 + nc, anchors]."""

    def __init__(self, nc: int, ch: tuple[int, ...], strides: tuple[int, ...], imgsz: int):
        super().__init__()
        self.nc, self.nl, self.reg_max = nc, len(ch), 16
        self.no = nc + self.reg_max * 4
        c2, c3 = max(16, ch[0] // 4, self.reg_max * 4), max(ch[0], min(nc, 100))
        self.cv2 = nn.ModuleList(nn.Sequential(_yolo_conv(x, c2, 3), _yolo_conv(c2, c2, 3),
                                               nn.Conv2d(c2, 4 * self.reg_max, 1)) for x in ch)
        self.cv3 = nn.ModuleList(nn.Sequential(_yolo_conv(x, c3, 3), _yolo_conv(c3, c3, 3),
                                               nn.Conv2d(c3, nc, 1)) for x in ch)
        self.dfl = DFL(self.reg_max)
        with torch.no_grad():  # Detect.bias_init()
            for a, b, s in zip(self.cv2, self.cv3, strides):
                a[-1].bias.fill_(1.0)
                b[-1].bias[:nc] = math.log(5 / nc / (640 / s) ** 2)
        # The export computes anchors for the fixed input shape once: they are constants of the graph.
        anchors, stride_t = _make_anchors([(imgsz // s, imgsz // s) for s in strides], list(strides))
        self.register_buffer("anchors", anchors.transpose(0, 1).unsqueeze(0).contiguous(), persistent=False)
        self.register_buffer("strides", stride_t.transpose(0, 1).contiguous(), persistent=False)  # [1, A]
        # anchors: [1, 2, A], i.e. Ultralytics' anchors.unsqueeze(0), stored folded

    def forward(self, x: list[torch.Tensor]) -> torch.Tensor:
        x = [torch.cat((self.cv2[i](x[i]), self.cv3[i](x[i])), 1) for i in range(self.nl)]
        b = x[0].shape[0]
        x_cat = torch.cat([xi.view(b, self.no, -1) for xi in x], 2)
        box, cls = x_cat.split((self.reg_max * 4, self.nc), 1)
        # dist2bbox(xywh=True, dim=1) then * strides, as Detect._inference
        lt, rb = self.dfl(box).chunk(2, 1)
        x1y1, x2y2 = self.anchors - lt, self.anchors + rb
        dbox = torch.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), 1) * self.strides
        return torch.cat((dbox, cls.sigmoid()), 1)


class YOLOv8(nn.Module):
    """yolov8.yaml at a given scale; ``scale=(depth, width, max_channels)``."""

    def __init__(self, scale=(0.33, 0.25, 1024), nc: int = 80, imgsz: int = 640):
        super().__init__()
        d, w, mc = scale
        ch = lambda c: _make_divisible(min(c, mc) * w, 8)
        n = lambda r: max(round(r * d), 1) if r > 1 else r
        c64, c128, c256, c512, c1024 = ch(64), ch(128), ch(256), ch(512), ch(1024)
        # backbone
        self.b0 = _yolo_conv(3, c64, 3, 2)                      # 0-P1/2
        self.b1 = _yolo_conv(c64, c128, 3, 2)                   # 1-P2/4
        self.b2 = C2f(c128, c128, n(3), True)
        self.b3 = _yolo_conv(c128, c256, 3, 2)                  # 3-P3/8
        self.b4 = C2f(c256, c256, n(6), True)
        self.b5 = _yolo_conv(c256, c512, 3, 2)                  # 5-P4/16
        self.b6 = C2f(c512, c512, n(6), True)
        self.b7 = _yolo_conv(c512, c1024, 3, 2)                 # 7-P5/32
        self.b8 = C2f(c1024, c1024, n(3), True)
        self.b9 = SPPF(c1024, c1024, 5)
        # head
        self.up = nn.Upsample(scale_factor=2, mode="nearest")  # 10, 13
        self.h12 = C2f(c1024 + c512, c512, n(3))
        self.h15 = C2f(c512 + c256, c256, n(3))                 # P3/8-small
        self.h16 = _yolo_conv(c256, c256, 3, 2)
        self.h18 = C2f(c256 + c512, c512, n(3))                 # P4/16-medium
        self.h19 = _yolo_conv(c512, c512, 3, 2)
        self.h21 = C2f(c512 + c1024, c1024, n(3))               # P5/32-large
        self.detect = Detect(nc, (c256, c512, c1024), (8, 16, 32), imgsz)

    def forward(self, x):
        x = self.b1(self.b0(x))
        p3 = self.b4(self.b3(self.b2(x)))
        p4 = self.b6(self.b5(p3))
        p5 = self.b9(self.b8(self.b7(p4)))
        h12 = self.h12(torch.cat((self.up(p5), p4), 1))
        h15 = self.h15(torch.cat((self.up(h12), p3), 1))
        h18 = self.h18(torch.cat((self.h16(h15), h12), 1))
        h21 = self.h21(torch.cat((self.h19(h18), p5), 1))
        return self.detect([h15, h18, h21])


def yolov8n() -> nn.Module:
    return YOLOv8((0.33, 0.25, 1024), nc=80, imgsz=640)


# --------------------------------------------------------------------------------------------- MobileNetV3
class SqueezeExcitation(nn.Module):
    """torchvision SqueezeExcitation with hard-sigmoid gate (MobileNetV3)."""

    def __init__(self, c: int, squeeze: int):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(c, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, c, 1)
        self.relu = nn.ReLU()
        self.gate = nn.Hardsigmoid()

    def forward(self, x):
        return self.gate(self.fc2(self.relu(self.fc1(self.avgpool(x))))) * x


class InvertedResidualV3(nn.Module):
    def __init__(self, cin: int, k: int, exp: int, cout: int, se: bool, hs: bool, stride: int):
        super().__init__()
        act = nn.Hardswish if hs else nn.ReLU
        bn = {"eps": 1e-3, "momentum": 0.01}
        layers: list[nn.Module] = []
        if exp != cin:
            layers.append(ConvNormAct(cin, exp, 1, act=act(), **bn))
        layers.append(ConvNormAct(exp, exp, k, stride, g=exp, act=act(), **bn))
        if se:
            layers.append(SqueezeExcitation(exp, _make_divisible(exp // 4, 8)))
        layers.append(ConvNormAct(exp, cout, 1, act=None, **bn))
        self.block = nn.Sequential(*layers)
        self.use_res = stride == 1 and cin == cout

    def forward(self, x):
        y = self.block(x)
        return y + x if self.use_res else y


# (in, kernel, expanded, out, SE, hard-swish, stride): Tables 1 and 2 of the paper
_V3_LARGE = [(16, 3, 16, 16, False, False, 1), (16, 3, 64, 24, False, False, 2), (24, 3, 72, 24, False, False, 1),
             (24, 5, 72, 40, True, False, 2), (40, 5, 120, 40, True, False, 1), (40, 5, 120, 40, True, False, 1),
             (40, 3, 240, 80, False, True, 2), (80, 3, 200, 80, False, True, 1), (80, 3, 184, 80, False, True, 1),
             (80, 3, 184, 80, False, True, 1), (80, 3, 480, 112, True, True, 1), (112, 3, 672, 112, True, True, 1),
             (112, 5, 672, 160, True, True, 2), (160, 5, 960, 160, True, True, 1), (160, 5, 960, 160, True, True, 1)]
_V3_SMALL = [(16, 3, 16, 16, True, False, 2), (16, 3, 72, 24, False, False, 2), (24, 3, 88, 24, False, False, 1),
             (24, 5, 96, 40, True, True, 2), (40, 5, 240, 40, True, True, 1), (40, 5, 240, 40, True, True, 1),
             (40, 5, 120, 48, True, True, 1), (48, 5, 144, 48, True, True, 1), (48, 5, 288, 96, True, True, 2),
             (96, 5, 576, 96, True, True, 1), (96, 5, 576, 96, True, True, 1)]


class MobileNetV3(nn.Module):
    def __init__(self, setting, last_channel: int, num_classes: int = 1000, width: float = 1.0):
        super().__init__()
        adj = lambda c: _make_divisible(c * width, 8)
        setting = [(adj(i), k, adj(e), adj(o), se, hs, s) for i, k, e, o, se, hs, s in setting]
        bn = {"eps": 1e-3, "momentum": 0.01}
        layers: list[nn.Module] = [ConvNormAct(3, setting[0][0], 3, 2, act=nn.Hardswish(), **bn)]
        layers += [InvertedResidualV3(*cfg) for cfg in setting]
        last_in = setting[-1][3]
        layers.append(ConvNormAct(last_in, 6 * last_in, 1, act=nn.Hardswish(), **bn))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Linear(6 * last_in, last_channel), nn.Hardswish(), nn.Dropout(0.2),
                                        nn.Linear(last_channel, num_classes))
        _torchvision_init(self, linear_std=0.01)

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def mobilenet_v3_large() -> nn.Module:
    return MobileNetV3(_V3_LARGE, 1280)


def mobilenet_v3_small() -> nn.Module:
    return MobileNetV3(_V3_SMALL, 1024)


# --------------------------------------------------------------------------------------------- MobileNetV2
class InvertedResidualV2(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, t: int):
        super().__init__()
        hidden = round(cin * t)
        layers: list[nn.Module] = []
        if t != 1:
            layers.append(ConvNormAct(cin, hidden, 1, act=nn.ReLU6()))
        layers += [ConvNormAct(hidden, hidden, 3, stride, g=hidden, act=nn.ReLU6()),
                   ConvNormAct(hidden, cout, 1, act=None)]
        self.conv = nn.Sequential(*layers)
        self.use_res = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2(nn.Module):
    def __init__(self, num_classes: int = 1000, width: float = 1.0):
        super().__init__()
        setting = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                   (6, 320, 1, 1)]  # t, c, n, s
        cin = _make_divisible(32 * width, 8)
        last = _make_divisible(1280 * max(1.0, width), 8)
        layers: list[nn.Module] = [ConvNormAct(3, cin, 3, 2, act=nn.ReLU6())]
        for t, c, n, s in setting:
            cout = _make_divisible(c * width, 8)
            for i in range(n):
                layers.append(InvertedResidualV2(cin, cout, s if i == 0 else 1, t))
                cin = cout
        layers.append(ConvNormAct(cin, last, 1, act=nn.ReLU6()))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last, num_classes))
        _torchvision_init(self, linear_std=0.01)

    def forward(self, x):
        x = nn.functional.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(torch.flatten(x, 1))


def mobilenet_v2() -> nn.Module:
    return MobileNetV2()


# --------------------------------------------------------------------------------------------- ResNet-18
class BasicBlock(nn.Module):
    def __init__(self, cin: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = ConvNormAct(cin, planes, 3, stride, act=nn.ReLU())
        self.conv2 = ConvNormAct(planes, planes, 3, 1, act=None)
        self.downsample = (ConvNormAct(cin, planes, 1, stride, p=0, act=None)
                           if stride != 1 or cin != planes else nn.Identity())
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.conv2(self.conv1(x)) + self.downsample(x))


class ResNet(nn.Module):
    def __init__(self, layers=(2, 2, 2, 2), num_classes: int = 1000):
        super().__init__()
        self.stem = ConvNormAct(3, 64, 7, 2, p=3, act=nn.ReLU())
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        blocks: list[nn.Module] = []
        cin = 64
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), layers)):
            for j in range(n):
                blocks.append(BasicBlock(cin, planes, 2 if (i > 0 and j == 0) else 1))
                cin = planes
        self.layers = nn.Sequential(*blocks)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)
        _torchvision_init(self, linear_std=None, relu=True)

    def forward(self, x):
        x = self.layers(self.maxpool(self.stem(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet18() -> nn.Module:
    return ResNet((2, 2, 2, 2))


def _torchvision_init(model: nn.Module, linear_std: float | None, relu: bool = False) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            if relu:
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            else:
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and linear_std is not None:
            nn.init.normal_(m.weight, 0, linear_std)
            nn.init.zeros_(m.bias)


# --------------------------------------------------------------------------------------------- registry
ARCHITECTURES: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...], dict]] = {
    "yolov8n": (yolov8n, (1, 3, 640, 640), {
        "params": 3_157_200, "macs": 4_350_000_000,
        "source": "Ultralytics docs/yolov8.yaml: 3.2M params (3,157,200; 3,151,904 fused), 8.7 GFLOPs fused "
                  "(8.9 unfused) at 640, Ultralytics FLOPs = 2 x MACs (thop)"}),
    "mobilenet_v3_large": (mobilenet_v3_large, (1, 3, 224, 224), {
        "params": 5_483_032, "macs": 217_000_000,
        "source": "Howard et al. 2019 (5.4M params, 219M MAdds); torchvision: 5,483,032 params, 0.217 GMACs"}),
    "mobilenet_v3_small": (mobilenet_v3_small, (1, 3, 224, 224), {
        "params": 2_542_856, "macs": 57_000_000,  # torchvision _ops; the paper rounds to 56M
        "source": "Howard et al. 2019 (2.5M params, 56M MAdds); torchvision: 2,542,856 params, 0.057 GMACs"}),
    "mobilenet_v2": (mobilenet_v2, (1, 3, 224, 224), {
        "params": 3_504_872, "macs": 301_000_000,
        "source": "Sandler et al. 2018 (3.4M params, 300M MAdds); torchvision: 3,504,872 params, 0.301 GMACs"}),
    "resnet18": (resnet18, (1, 3, 224, 224), {
        "params": 11_689_512, "macs": 1_814_000_000,
        "source": "He et al. 2016 (1.8e9 FLOPs = multiply-adds); torchvision: 11,689,512 params, 1.814 GMACs"}),
}
_IO_NAMES = {"yolov8n": ("images", "output0")}  # the names Ultralytics' export uses; others: input / output


def _random_inputs(shape: tuple[int, ...], n: int, seed: int) -> list[np.ndarray]:
    """Seeded uniform [0, 1) images (what a normalised camera frame looks like in magnitude)."""
    rng = np.random.default_rng(seed)
    return [rng.random(shape, dtype=np.float32) for _ in range(n)]


def build_model(name: str, seed: int = 0) -> nn.Module:
    """The torch model in eval mode with seeded weights and BatchNorm statistics estimated on random inputs
    (BN not yet folded)."""
    builder, shape, _ = ARCHITECTURES[name]
    torch.manual_seed(seed)
    model = builder()
    # The reference inits zero some biases (Linear heads, SE convs). The exporter's optimizer drops all-zero
    # biases, which a trained model never has: give them small seeded values so the graph keeps its Add work.
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None and not m.bias.any():
                m.bias.normal_(0.0, 0.01)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the passes below
    model.train()
    batch = (2,) + tuple(shape[1:])
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for _ in range(BN_STAT_BATCHES):
            model(torch.rand(batch, generator=gen))
    return model.eval()


def fuse_bn(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every BatchNorm folded into the convolution before it."""
    fused = copy.deepcopy(model)
    for m in fused.modules():
        if isinstance(m, ConvNormAct):
            m.fuse()
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    return fused.eval()


def torch_param_count(model: nn.Module) -> int:
    """Parameters as the published counts give them (BN affine included, BN buffers excluded)."""
    return sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------------------------- export
def _export(model: nn.Module, x: torch.Tensor, path: Path, io: tuple[str, str]) -> str:
    """torch.onnx.export with dynamo=True, falling back to the TorchScript exporter; returns which one."""
    errors = []
    for exporter in EXPORTERS:
        dynamo = exporter == "dynamo"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                kwargs = {"input_names": [io[0]], "output_names": [io[1]], "opset_version": OPSET, "dynamo": dynamo}
                if dynamo:  # native opset 18; down-converted below once the optimizer made the axes constant
                    kwargs.update(external_data=False, optimize=True, opset_version=max(OPSET, 18))
                else:
                    kwargs.update(do_constant_folding=True)
                torch.onnx.export(model, (x,), str(path), **kwargs)
            import onnx
            proto = onnx.load(str(path))
            if dynamo and OPSET < 18 and _opset(proto) == 18:
                proto = _downgrade_18_to_17(proto)
            elif not dynamo:  # fold what the TorchScript exporter leaves (Identity, Shape->Gather, Constant)
                import onnxscript.optimizer
                proto = onnxscript.optimizer.optimize(proto)
            onnx.save(_strip_metadata(proto), str(path))
            return exporter
        except Exception as exc:  # noqa: BLE001 - try the other exporter, report both if both fail
            errors.append(f"dynamo={dynamo}: {type(exc).__name__}: {exc}")
            print(f"  export with dynamo={dynamo} failed: {type(exc).__name__}: {str(exc)[:300]}",
                  file=sys.stderr)
    raise RuntimeError("both exporters failed:\n" + "\n".join(errors))


def _strip_metadata(proto):
    """Drop the exporter's per-node/per-value metadata (stack traces with local paths, fx node text, module
    names): a deployment file carries none of it, and without it the same seed gives byte-identical files."""
    g = proto.graph
    for item in [g, *g.node, *g.value_info, *g.input, *g.output, *g.initializer]:
        del item.metadata_props[:]
    for node in g.node:
        node.doc_string = ""
    g.doc_string = ""
    return proto


def _opset(proto) -> int:
    return next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))


# Reduce ops whose ``axes`` became an input in opset 18 (ReduceSum did so in 13)
_REDUCE_18 = {"ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum",
              "ReduceLogSumExp", "ReduceSumSquare"}


def _downgrade_18_to_17(proto):
    """Rewrite an opset-18 graph as opset 17, for the ops whose schema changed in 18 and that these models use.

    onnx.version_converter cannot do it (no Split 18->17 adapter; its Reduce adapter keeps the opset-18
    attribute ``noop_with_empty_axes``), and the dynamo exporter's own down-conversion, which calls it, leaves
    invalid graphs. Rules: Reduce* constant ``axes`` input -> attribute; Split ``num_outputs`` -> equal split
    (or an explicit ``split`` input); Resize's new attributes dropped when at their defaults. Any other op
    introduced or changed in opset 18 raises NotImplementedError (the caller then uses the other exporter)."""
    import onnx
    from onnx import helper, numpy_helper, shape_inference

    g = proto.graph
    consts = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    for node in g.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    inferred = shape_inference.infer_shapes(proto, strict_mode=False).graph
    shapes = {vi.name: [d.dim_value if d.HasField("dim_value") else -1 for d in vi.type.tensor_type.shape.dim]
              for vi in list(inferred.input) + list(inferred.value_info) + list(inferred.output)}

    def attrs(node) -> dict:
        return {a.name: helper.get_attribute_value(a) for a in node.attribute}

    def set_attrs(node, values: dict) -> None:
        del node.attribute[:]
        node.attribute.extend(helper.make_attribute(k, v) for k, v in values.items())

    for node in g.node:
        if node.domain not in ("", "ai.onnx"):
            continue
        since = onnx.defs.get_schema(node.op_type, 18).since_version
        if since < 18:
            continue
        a = attrs(node)
        if node.op_type in _REDUCE_18:
            if a.pop("noop_with_empty_axes", 0):
                raise NotImplementedError(f"{node.name}: noop_with_empty_axes=1 has no opset-17 form")
            if len(node.input) > 1 and node.input[1]:
                if node.input[1] not in consts:
                    raise NotImplementedError(f"{node.name}: {node.op_type} axes are not constant")
                a["axes"] = [int(v) for v in consts[node.input[1]].reshape(-1)]
            del node.input[1:]
            set_attrs(node, a)
        elif node.op_type == "Split":
            n = a.pop("num_outputs", None)
            if n is not None and not (len(node.input) > 1 and node.input[1]):
                dims = shapes.get(node.input[0])
                axis = a.get("axis", 0)
                size = dims[axis] if dims else -1
                if size <= 0:
                    raise NotImplementedError(f"{node.name}: Split num_outputs on an unknown dimension")
                if size % n:  # opset 18: ceil-sized chunks, the last one smaller
                    chunk = -(-size // n)
                    sizes = [chunk] * (n - 1) + [size - chunk * (n - 1)]
                    name = f"{node.name or node.output[0]}_split_sizes"
                    g.initializer.append(numpy_helper.from_array(np.array(sizes, dtype=np.int64), name))
                    node.input.append(name)
            set_attrs(node, a)
        elif node.op_type == "Resize":
            if a.pop("antialias", 0) or a.pop("axes", None) or a.pop("keep_aspect_ratio_policy", b"stretch") not in (
                    b"stretch", "stretch"):
                raise NotImplementedError(f"{node.name}: Resize uses opset-18 features")
            set_attrs(node, a)
        elif node.op_type == "Pad":
            if len(node.input) > 3 and node.input[3]:
                raise NotImplementedError(f"{node.name}: Pad with axes has no opset-17 form")
        else:
            raise NotImplementedError(f"{node.op_type} changed in opset 18; no 18->17 rule here")
    for o in proto.opset_import:
        if o.domain in ("", "ai.onnx"):
            o.version = 17
    used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    kept = [i for i in g.initializer if i.name in used]  # the Reduce axes now live in attributes
    del g.initializer[:]
    g.initializer.extend(kept)
    return proto


def _ort_session(path: Path | str):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _ort_run(path: Path | str, x: np.ndarray) -> np.ndarray:
    sess = _ort_session(path)
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def build_onnx(name: str, out_dir: str | Path, seed: int = 0) -> Path:
    """Build ``name`` with seeded random weights, fold BN, export fp32 ONNX (opset 17, batch 1) to
    ``out_dir/<name>.onnx`` and check it: onnx.checker, no BatchNormalization left, and ONNX Runtime's output
    equal to the (unfused) torch model's within |d| <= 1e-3 + 1e-3*|ref| on a seeded random input.
    Writes ``out_dir/<name>.build.json`` (exporter used, parameter counts, max differences, seconds)."""
    import onnx

    _, shape, _ = ARCHITECTURES[name]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.onnx"
    started = time.perf_counter()
    model = build_model(name, seed)
    fused = fuse_bn(model)
    x = torch.from_numpy(_random_inputs(shape, 1, seed + 2)[0])
    with torch.no_grad():
        ref = model(x).numpy()
        ref_fused = fused(x).numpy()
    built = time.perf_counter()
    exporter = _export(fused, x, path, _IO_NAMES.get(name, ("input", "output")))
    exported = time.perf_counter()

    if _opset(onnx.load(str(path), load_external_data=False)) != OPSET:
        raise AssertionError(f"{name}: exported at opset {_opset(onnx.load(str(path)))}, not {OPSET}")
    onnx.checker.check_model(str(path), full_check=True)
    ops = op_histogram(path)
    bad = {op: n for op, n in ops.items() if op in ("BatchNormalization", "Dropout", "Identity")}
    if bad:
        raise AssertionError(f"{name}: training/no-op nodes left in the export: {bad}")
    out = _ort_run(path, x.numpy())
    if out.shape != ref.shape:
        raise AssertionError(f"{name}: ORT output shape {out.shape} != torch {ref.shape}")
    diff = np.abs(out - ref)
    if not np.all(diff <= ATOL + RTOL * np.abs(ref)):
        worst = int(np.argmax(diff - RTOL * np.abs(ref)))
        raise AssertionError(f"{name}: ORT vs torch differ: max |d| {diff.max():.3g}, worst element "
                             f"{out.flat[worst]:.6g} vs {ref.flat[worst]:.6g}")
    info = {
        "name": name, "seed": seed, "exporter": exporter, "opset": OPSET, "input_shape": list(shape),
        "output_shape": list(out.shape), "params_torch": torch_param_count(model),
        "params_onnx": count_params(path), "macs": count_macs(path), "nodes": sum(ops.values()), "ops": ops,
        "max_abs_diff_vs_torch": float(diff.max()), "max_abs_diff_fused_vs_unfused_torch":
            float(np.abs(ref_fused - ref).max()), "output_abs_max": float(np.abs(ref).max()),
        "seconds": {"build_torch": round(built - started, 2), "export": round(exported - built, 2),
                    "check": round(time.perf_counter() - exported, 2)},
    }
    (out_dir / f"{name}.build.json").write_text(json.dumps(info, indent=2))
    return path


# --------------------------------------------------------------------------------------------- variants
class _RandomReader:
    """CalibrationDataReader over seeded random inputs of the model's input shape."""

    def __init__(self, input_name: str, shape: tuple[int, ...], n: int, seed: int):
        self._it = iter([{input_name: x} for x in _random_inputs(shape, n, seed)])

    def get_next(self):
        return next(self._it, None)

    def rewind(self):  # pragma: no cover - not used by MinMax
        pass


def _input_info(path: Path) -> tuple[str, tuple[int, ...]]:
    import onnx
    proto = onnx.load(str(path), load_external_data=False)
    inits = {i.name for i in proto.graph.initializer}
    inp = next(i for i in proto.graph.input if i.name not in inits)
    dims = tuple(d.dim_value for d in inp.type.tensor_type.shape.dim)
    if not dims or any(d <= 0 for d in dims):
        raise ValueError(f"{path}: input {inp.name} has no static shape: {dims}")
    return inp.name, dims


def variants(fp32_path: str | Path, out_dir: str | Path, seed: int = 0,
             int8_exclude: str | list[str] | None = "auto") -> dict[str, Path]:
    """The deployment variants of an fp32 ONNX model, written next to each other as ``<stem>.<variant>.onnx``:
      fp32          the input file itself
      int8-dynamic  quantize_dynamic, op_types MatMul/Gemm only, int8 weights. ORT first rewrites each Gemm as
                    MatMul (+ Add), so a classifier's Linear layers are quantized (MatMulInteger); no Conv is
                    touched, so on conv nets this quantizes 1-2 nodes, and on YOLOv8n (no Gemm/MatMul) nothing:
                    the file is then the fp32 graph again.
      int8-static   quantize_static, QDQ, per-channel, uint8 activations / int8 weights, MinMax calibration on
                    8 seeded random inputs of the input shape (opset raised to 13 first if lower).
                    ``int8_exclude``: node names kept in float. "auto" (default) keeps a YOLO box decode in
                    float: every node downstream of the Detect head's last 1x1 convs (DFL softmax and conv,
                    dist2bbox arithmetic, class sigmoid, the reshapes/concats), as Ultralytics' own INT8 export
                    (OpenVINO/NNCF ignored_scope) does: one uint8 scale for pixel boxes (0..640) concatenated
                    with class scores (0..1) zeroes every score. Pass None or [] to quantize everything.
      fp16          onnxruntime.transformers.float16.convert_float_to_float16(keep_io_types=True).
    Each variant passes onnx.checker (full) and loads in ONNX Runtime."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.transformers.float16 import convert_float_to_float16

    fp32_path, out_dir = Path(fp32_path), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = fp32_path.name[:-len(".onnx")] if fp32_path.name.endswith(".onnx") else fp32_path.stem
    paths = {v: out_dir / f"{stem}.{v}.onnx" for v in VARIANT_NAMES[1:]}
    input_name, shape = _input_info(fp32_path)
    if int8_exclude == "auto":
        int8_exclude = yolo_decode_nodes(fp32_path)
    elif isinstance(int8_exclude, str):
        raise ValueError(f"int8_exclude: 'auto', None or a list of node names, not {int8_exclude!r}")

    with _quiet():
        quantize_dynamic(fp32_path, paths["int8-dynamic"], op_types_to_quantize=["MatMul", "Gemm"],
                         weight_type=QuantType.QInt8)

        source = fp32_path
        proto = onnx.load(str(fp32_path))
        if _opset(proto) < 13:  # per-channel QDQ needs axis on (De)QuantizeLinear
            from onnx import version_converter
            source = out_dir / f"{stem}.opset13.tmp.onnx"
            onnx.save(version_converter.convert_version(proto, 13), str(source))
        quantize_static(source, paths["int8-static"], _RandomReader(input_name, shape, N_CALIBRATION, seed + 3),
                        quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, nodes_to_exclude=list(int8_exclude or []))
        if source != fp32_path:
            Path(source).unlink()

        # Repairs so onnx.checker (full) and shape inference accept the result: keep_io_types appends its
        # input Casts after their consumers (sort the nodes); an initializer it leaves in fp32 (Resize scales)
        # gets a no-op Cast to fp32 (removed: it also hides the constant from shape inference) and a stale
        # float16 value_info entry (value_info of initializers dropped).
        fp16 = _toposort(_drop_noop_casts(convert_float_to_float16(proto, keep_io_types=True)))
        inits = {i.name for i in fp16.graph.initializer}
        kept = [vi for vi in fp16.graph.value_info if vi.name not in inits]
        fp16.graph.ClearField("value_info")
        fp16.graph.value_info.extend(kept)
        onnx.save(fp16, str(paths["fp16"]))
    for p in paths.values():
        onnx.checker.check_model(str(p), full_check=True)
        _ort_session(p)
    return {"fp32": fp32_path, **paths}


@contextlib.contextmanager
def _quiet():
    """Silence warnings and the advice ORT's quantizer logs on the root logger, restoring both after."""
    root = logging.getLogger()
    level = root.level
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            root.setLevel(logging.ERROR)
            yield
    finally:
        root.setLevel(level)


def yolo_decode_nodes(onnx_path: str | Path) -> list[str]:
    """Names of the nodes downstream of a YOLOv8 Detect head's last 1x1 convs (found by their weight names,
    ``detect.cv2.<i>.2.weight`` / ``detect.cv3.<i>.2.weight``, as this module exports them): the box decode.
    Empty for any other graph."""
    import re

    import onnx
    g = onnx.load(str(onnx_path), load_external_data=False).graph
    head = re.compile(r"detect\.cv[23]\.\d+\.2\.weight$")
    frontier = {n.output[0] for n in g.node if n.op_type == "Conv" and len(n.input) > 1 and head.search(n.input[1])}
    names = []
    for node in g.node:  # topological order: one pass collects every descendant
        if any(i in frontier for i in node.input):
            names.append(node.name)
            frontier.update(node.output)
    return names


def _drop_noop_casts(proto):
    """Remove Cast nodes that cast an initializer to the type it already has; consumers read it directly."""
    g = proto.graph
    init_types = {i.name: i.data_type for i in g.initializer}
    outputs = {o.name for o in g.output}
    rename, keep = {}, []
    for node in g.node:
        to = next((a.i for a in node.attribute if a.name == "to"), None)
        if (node.op_type == "Cast" and node.input[0] in init_types and init_types[node.input[0]] == to
                and node.output[0] not in outputs):
            rename[node.output[0]] = node.input[0]
        else:
            keep.append(node)
    for node in keep:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
    del g.node[:]
    g.node.extend(keep)
    return proto


def _toposort(proto):
    """Reorder the main graph's nodes topologically (stable: keeps the given order where it is valid)."""
    g = proto.graph
    ready = {i.name for i in g.input} | {i.name for i in g.initializer} | {""}
    pending, ordered = list(g.node), []
    while pending:
        rest = []
        for node in pending:
            if all(i in ready for i in node.input):
                ordered.append(node)
                ready.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):
            raise ValueError(f"graph has a cycle or dangling inputs at {[n.name for n in rest[:5]]}")
        pending = rest
    nodes = [copy.deepcopy(n) for n in ordered]
    del g.node[:]
    g.node.extend(nodes)
    return proto


# --------------------------------------------------------------------------------------------- counting
def op_histogram(onnx_path: str | Path) -> dict[str, int]:
    """{op_type: number of nodes} of the main graph (domain-qualified when not the ONNX domain)."""
    import onnx
    proto = onnx.load(str(onnx_path), load_external_data=False)
    hist: dict[str, int] = {}
    for node in proto.graph.node:
        key = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
        hist[key] = hist.get(key, 0) + 1
    return dict(sorted(hist.items()))


def count_params(onnx_path: str | Path) -> int:
    """Number of elements of the initializers (folded weights + biases + graph constants). The exporter's
    optimizer merges identical initializers: YOLOv8n's three detect.cv2.*.2 biases (all 1.0 from bias_init)
    become one, 128 elements fewer."""
    import onnx
    proto = onnx.load(str(onnx_path), load_external_data=False)
    return sum(int(np.prod(i.dims)) if i.dims else 1 for i in proto.graph.initializer)


# Where the data and weight operands sit: op -> (input index of A/X, input index of B/W)
_MAC_OPS = {"Conv": (0, 1), "ConvInteger": (0, 1), "QLinearConv": (0, 3),
            "Gemm": (0, 1), "MatMul": (0, 1), "MatMulInteger": (0, 1), "QLinearMatMul": (0, 3)}


def count_macs(onnx_path: str | Path) -> int:
    """Multiply-accumulates of the Conv / Gemm / MatMul nodes (and ConvInteger, QLinearConv, MatMulInteger,
    QLinearMatMul) at the model's static shapes, from onnx shape inference:
      Conv:   numel(Y) * (C_in / group) * prod(kernel)
      Gemm:   M * N * K
      MatMul: numel(Y) * K
    Element-wise work (activations, BN if any, adds, pooling, softmax) is not counted, as in the published
    MAdds figures. Raises ValueError when a counted node's shapes cannot be inferred."""
    import onnx
    from onnx import shape_inference

    proto = onnx.load(str(onnx_path), load_external_data=False)
    proto.graph.ClearField("value_info")  # infer afresh: converters leave stale entries
    proto = shape_inference.infer_shapes(proto, strict_mode=False)
    g = proto.graph
    shapes: dict[str, tuple[int, ...] | None] = {}

    def dims_of(vi) -> tuple[int, ...] | None:
        t = vi.type.tensor_type
        if not t.HasField("shape"):
            return None
        d = tuple(x.dim_value if x.HasField("dim_value") else -1 for x in t.shape.dim)
        return None if any(v <= 0 for v in d) and d else d

    for vi in list(g.input) + list(g.output) + list(g.value_info):
        shapes[vi.name] = dims_of(vi)
    for init in g.initializer:
        shapes[init.name] = tuple(init.dims)
    for node in g.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    shapes[node.output[0]] = tuple(a.t.dims)

    total = 0
    for node in g.node:
        if node.op_type not in _MAC_OPS or node.domain not in ("", "ai.onnx"):
            continue
        ia, ib = _MAC_OPS[node.op_type]
        a, b, y = shapes.get(node.input[ia]), shapes.get(node.input[ib]), shapes.get(node.output[0])
        if a is None or b is None or y is None:
            raise ValueError(f"{onnx_path}: no static shapes for {node.op_type} {node.name!r}: A={a} B={b} Y={y}")
        if node.op_type in ("Conv", "ConvInteger", "QLinearConv"):
            group = next((at.i for at in node.attribute if at.name == "group"), 1)
            total += int(np.prod(y)) * (a[1] // group) * int(np.prod(b[2:]))
        elif node.op_type == "Gemm":
            trans_a = next((at.i for at in node.attribute if at.name == "transA"), 0)
            k = a[0] if trans_a else a[1]
            total += int(np.prod(y)) * k
        else:  # MatMul family: numpy semantics
            total += int(np.prod(y)) * a[-1]
    return total


# --------------------------------------------------------------------------------------------- main
def _mb(p: Path) -> float:
    return p.stat().st_size / 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--only", nargs="+", choices=sorted(ARCHITECTURES), default=list(ARCHITECTURES))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)

    rows = []
    for name in args.only:
        print(f"building {name} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        fp32 = build_onnx(name, args.out_dir, seed=args.seed)
        t1 = time.perf_counter()
        paths = variants(fp32, args.out_dir, seed=args.seed)
        t2 = time.perf_counter()
        info = json.loads((args.out_dir / f"{name}.build.json").read_text())
        published = ARCHITECTURES[name][2]
        x = _random_inputs(tuple(info["input_shape"]), 1, args.seed + 4)[0]
        ref = _ort_run(fp32, x)
        per_variant = {}
        for v, p in paths.items():
            out = ref if v == "fp32" else _ort_run(p, x)
            ops = op_histogram(p)
            per_variant[v] = {
                "path": str(p), "mb": round(_mb(p), 3), "nodes": sum(ops.values()), "macs": count_macs(p),
                "max_abs_diff_vs_fp32": float(np.abs(out - ref).max()),
                "quant_nodes": {k: n for k, n in ops.items()
                                if "integer" in k.lower() or "quant" in k.lower() or k.startswith("QLinear")},
                "ops": ops}
        info.update(published=published, variants=per_variant,
                    seconds={**info["seconds"], "build_onnx_total": round(t1 - t0, 2),
                             "variants": round(t2 - t1, 2)})
        (args.out_dir / f"{name}.build.json").write_text(json.dumps(info, indent=2))
        rows.append(info)

    (args.out_dir / "summary.json").write_text(json.dumps(rows, indent=2))
    head = (f"{'name':<20}{'params':>12}{'pub':>12}{'Δ%':>7}{'MACs':>15}{'pub':>15}{'Δ%':>7}  {'output':<16}"
            f"{'fp32':>7}{'i8dyn':>7}{'i8st':>7}{'fp16':>7} MB  {'exporter':<11}{'build s':>8}{'var s':>7}")
    print(head)
    print("-" * len(head))
    for r in rows:
        p, v = r["published"], r["variants"]
        dp = 100 * (r["params_torch"] - p["params"]) / p["params"]
        dm = 100 * (r["macs"] - p["macs"]) / p["macs"]
        print(f"{r['name']:<20}{r['params_torch']:>12,}{p['params']:>12,}{dp:>7.2f}{r['macs']:>15,}{p['macs']:>15,}"
              f"{dm:>7.2f}  {'x'.join(map(str, r['output_shape'])):<16}"
              + "".join(f"{v[k]['mb']:>7.2f}" for k in VARIANT_NAMES)
              + f"     {r['exporter']:<11}{r['seconds']['build_onnx_total']:>8.1f}{r['seconds']['variants']:>7.1f}")
    print()
    for r in rows:
        v = r["variants"]
        print(f"{r['name']}: {r['nodes']} nodes fp32; ORT vs torch max|d| {r['max_abs_diff_vs_torch']:.2e} "
              f"(|out| max {r['output_abs_max']:.3g}); int8-dynamic quantized "
              f"{v['int8-dynamic']['quant_nodes'] or 'nothing'}; int8-static "
              f"{v['int8-static']['quant_nodes']}; max|d| vs fp32: "
              + ", ".join(f"{k} {v[k]['max_abs_diff_vs_fp32']:.3g}" for k in VARIANT_NAMES[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
