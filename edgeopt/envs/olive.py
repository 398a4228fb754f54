"""The olive environment: Microsoft's Olive (olive-ai) and the ONNX Runtime it runs its passes on, apart from
edgeopt's own packages (Olive pins its own torch, transformers and ONNX Runtime variants)."""

from __future__ import annotations

from edgeopt.envs.backend import BackendEnv

OLIVE = "olive"


class OliveEnv(BackendEnv):
    name = OLIVE
    describes = "the olive environment (olive-ai and the ONNX Runtime it runs)"
    imports = ("olive.workflows",)
    shown_packages = ("olive-ai", "onnxruntime", "onnxruntime-gpu", "onnx")
    # olive-ai 0.13.0 sends a heartbeat before it reads OLIVE_DISABLE_TELEMETRY; only a CI variable stops it first
    worker_environment = {"CI": "1", "OLIVE_DISABLE_TELEMETRY": "1"}
