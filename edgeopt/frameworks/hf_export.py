"""Hugging Face / sentence-transformers folder → ONNX, checked against torch.

Two exporters: optimum's (`optimum-cli export onnx`, what a user of Hugging Face models runs without edgeopt; its
graph is the one ONNX Runtime's transformer optimizer knows how to fuse) and torch's dynamo exporter (any
model torch.export can trace). `auto` takes optimum's when it is installed and handles the model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from edgeopt.artifact import ModelArtifact
from edgeopt.frameworks.base import FrameworkAdapter, require
from edgeopt.frameworks.common import fresh_dir, probe_distribution
from edgeopt.passes import Pass, PassConfig, PassContext

INSTALL = "pip install 'edgeopt[hf]'"
TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class ExportConfig(PassConfig):
    head: Literal["auto", "sentence-embedding", "sequence-classification", "last-hidden-state"] = Field(
        default="auto", description="auto: sentence-embedding for sentence-transformers folders, else by task")
    check_samples: int = Field(default=16, ge=1, description="samples compared between torch and ONNX Runtime")
    max_abs_error: float = Field(default=1e-3, gt=0, description="export fails above this difference")
    exporter: Literal["auto", "optimum", "dynamo"] = Field(
        default="auto", description="auto: optimum's exporter when installed and it handles the model, else dynamo")


class ExportOnnx(Pass):
    name = "export_onnx"
    Config = ExportConfig
    needs_calibration = True  # real inputs to trace with and to check the export against
    cost = 3
    summary = "export to ONNX (optimum's or torch's dynamo exporter); outputs compared with the source model"

    def apply(self, config: ExportConfig, artifact, context: PassContext) -> ModelArtifact:
        torch = require("torch", "torch (Hugging Face export)", INSTALL)
        transformers = require("transformers", "transformers (Hugging Face export)", INSTALL)
        source = Path(context.source_path)
        head = config.head
        if head == "auto":
            head = "sentence-embedding" if (source / "modules.json").exists() else {
                "classification": "sequence-classification"}.get(context.task, "last-hidden-state")
        wrapper, output_name = _wrap(source, head, torch, transformers)
        with np.load(context.calibration_data) as data:
            names = [n for n in TEXT_INPUTS if n in data.files and n in wrapper.input_names]
            arrays = {n: data[n].astype(np.int64) for n in names}
        count = min(config.check_samples, len(arrays[names[0]]))
        out, exporter, why_not_optimum = _export(config.exporter, source, head, wrapper, arrays,
                                                 fresh_dir(context.output_dir), torch)
        error = _compare(out, wrapper, output_name, {n: a[:count] for n, a in arrays.items()}, torch)
        if error > config.max_abs_error:
            raise ValueError(f"exported model differs from the source by {error:.2e} (limit {config.max_abs_error:.0e})")
        notes = {"head": head, "exporter": _exporter_name(exporter), "max_abs_error_vs_torch": float(error),
                 "checked_samples": count, "torch": torch.__version__, "transformers": transformers.__version__}
        if why_not_optimum:
            notes["why_not_optimum"] = why_not_optimum
        return ModelArtifact(path=str(out), framework="onnxruntime", precision="fp32",
                             lineage=(context.lineage(f"hf.{self.name}", config, notes),))


OPTIMUM_INSTALL = "pip install 'optimum-onnx[onnxruntime]==0.1.0'"


def _optimum_missing() -> str | None:
    probe = probe_distribution("optimum-onnx", import_name="optimum.exporters.onnx")
    return None if probe.available else f"optimum's ONNX exporter is not available ({probe.detail})"


def _exporter_name(exporter: str) -> str:
    from importlib import metadata

    if exporter == "optimum":
        return f"optimum-onnx {metadata.version('optimum-onnx')} (optimum-cli export onnx)"
    return f"torch {metadata.version('torch')} dynamo exporter"


def _export(choice: str, source: Path, head: str, wrapper, arrays: dict, out_dir: Path, torch):
    """(model path, the exporter used, why optimum's was not used when `choice` is auto)."""
    if choice == "dynamo":
        return _export_dynamo(wrapper, arrays, out_dir, torch), "dynamo", None
    why_not = _optimum_missing()
    if why_not and choice == "optimum":
        raise ValueError(f"{why_not}: {OPTIMUM_INSTALL}")
    if why_not is None:
        try:
            return _export_optimum(source, head, out_dir), "optimum", None
        except (ValueError, KeyError, NotImplementedError) as exc:  # an architecture optimum does not know
            if choice == "optimum":
                raise
            why_not = f"optimum's exporter failed: {str(exc).splitlines()[0][:200]}"
            fresh_dir(out_dir)
    return _export_dynamo(wrapper, arrays, out_dir, torch), "dynamo", why_not


def _export_optimum(source: Path, head: str, out_dir: Path) -> Path:
    """optimum's exporter, as `optimum-cli export onnx` runs it; its own validation is ours (_compare)."""
    import logging
    import warnings

    from optimum.exporters.onnx import main_export

    library, task = {"sentence-embedding": ("sentence_transformers", "feature-extraction"),
                     "sequence-classification": ("transformers", "text-classification")}.get(
                         head, ("transformers", "feature-extraction"))
    logging.getLogger("optimum").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's tracer warns on every shape-dependent branch it records
        main_export(str(source), str(out_dir), task=task, library_name=library, do_validation=False,
                    device="cpu", opset=18)
    out = out_dir / "model.onnx"
    if not out.exists():
        raise ValueError(f"optimum's exporter wrote no model.onnx in {out_dir}")
    for extra in out_dir.iterdir():  # tokenizer and config copies: the package takes those from the source
        if extra != out and extra.is_file():
            extra.unlink()
    return out


def _export_dynamo(wrapper, arrays: dict, out_dir: Path, torch) -> Path:
    names = list(arrays)
    trace_args = tuple(torch.from_numpy(arrays[n][:2]) for n in names)
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    out = out_dir / "model.onnx"
    program = torch.onnx.export(
        wrapper, trace_args, dynamo=True, input_names=names, output_names=[wrapper.output_name],
        dynamic_shapes={"tensors": tuple({0: batch, 1: sequence} for _ in names)},
    )
    program.save(str(out))
    return out


def _wrap(source: Path, head: str, torch, transformers):
    if head == "sequence-classification":
        model = transformers.AutoModelForSequenceClassification.from_pretrained(source)
    else:
        model = transformers.AutoModel.from_pretrained(source)
    model.eval()
    accepts = set(model.forward.__code__.co_varnames)
    input_names = [n for n in TEXT_INPUTS if n in accepts and not (n == "token_type_ids" and
                   getattr(model.config, "type_vocab_size", 0) < 1)]
    pooling = _sentence_pooling(source) if head == "sentence-embedding" else None
    output = {"sequence-classification": "logits", "sentence-embedding": "sentence_embedding"}.get(head, "last_hidden_state")

    class Wrapper(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model
            self.input_names = input_names
            self.output_name = output

        def forward(self, *tensors):
            kwargs = dict(zip(self.input_names, tensors))
            outputs = self.model(**kwargs)
            if head == "sequence-classification":
                return outputs.logits
            hidden = outputs.last_hidden_state
            if pooling is None:
                return hidden
            if pooling["mode"] == "cls":
                embedding = hidden[:, 0]
            else:
                mask = kwargs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                embedding = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            if pooling["normalize"]:
                embedding = torch.nn.functional.normalize(embedding, p=2, dim=1)
            return embedding

    return Wrapper(), output


def _sentence_pooling(source: Path) -> dict:
    """Read the sentence-transformers pipeline (modules.json) so the ONNX graph ends in the same embedding."""
    modules = json.loads((source / "modules.json").read_text()) if (source / "modules.json").exists() else []
    mode, normalize = "mean", False
    for module in modules:
        kind = module.get("type", "")
        if kind.endswith("Pooling"):
            config = json.loads((source / module.get("path", "") / "config.json").read_text())
            if config.get("pooling_mode_cls_token"):
                mode = "cls"
            elif not config.get("pooling_mode_mean_tokens", True):
                raise ValueError(f"unsupported sentence-transformers pooling in {source}: {config}")
        elif kind.endswith("Normalize"):
            normalize = True
    return {"mode": mode, "normalize": normalize}


def _compare(path: Path, wrapper, output_name: str, arrays: dict[str, np.ndarray], torch) -> float:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    declared = {i.name for i in session.get_inputs()}
    if not declared <= set(arrays):
        raise ValueError(f"the export takes {sorted(declared)}; the data has {sorted(arrays)}")
    got = session.run([output_name], {n: a for n, a in arrays.items() if n in declared})[0]
    with torch.no_grad():
        expected = wrapper(*(torch.from_numpy(arrays[n]) for n in wrapper.input_names)).numpy()
    return float(np.abs(got - expected).max())


class HfExportAdapter(FrameworkAdapter):
    """A pass provider only: its export is run by ONNX Runtime."""

    name = "hf"
    install = INSTALL
    passes = {ExportOnnx.name: ExportOnnx}

    def probe(self):
        return probe_distribution("torch", "transformers", "onnxscript", import_name="transformers")


ADAPTER = HfExportAdapter()
