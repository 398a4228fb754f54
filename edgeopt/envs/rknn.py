"""The rknn environment: Rockchip's rknn-toolkit2 (ONNX → .rknn for the RK3566/RK3588 NPUs, and its simulator),
whose pins (numpy 1.26, onnx 1.18, protobuf 4.25) cannot share edgeopt's own environment."""

from __future__ import annotations

from edgeopt.envs.backend import BackendEnv

RKNN = "rknn"


class RknnEnv(BackendEnv):
    name = RKNN
    describes = "the rknn environment (rknn-toolkit2 and its pins)"
    imports = ("rknn.api",)
    shown_packages = ("rknn-toolkit2", "onnx", "numpy")
