"""Environment that keeps every framework a build starts from phoning home (see shared field notes)."""

from __future__ import annotations

from collections.abc import Mapping

OFFLINE_ENV = {
    "ORT_DISABLE_TELEMETRY": "1",  # ONNX Runtime queues telemetry unless this is set before import
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    # NNCF replaces its telemetry with a stub when NNCF_CI is set; OpenVINO's own consent check reads
    # no variable at all: the openvino adapter declines it in-process (frameworks/openvino.py)
    "NNCF_CI": "1",
    "DO_NOT_TRACK": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def offline_env(base: Mapping[str, str]) -> dict[str, str]:
    return {**base, **OFFLINE_ENV}
