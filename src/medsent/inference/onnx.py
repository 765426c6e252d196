"""ONNX export of a run's network and an onnxruntime stand-in for it at prediction time.

The graph takes (input_ids, attention_mask), both int64 [batch, length] with dynamic axes, and
returns logits; tokenisation and batching stay in Python and are shared with the PyTorch path, so
the two paths differ only in the network arithmetic (checked against each other at export time).
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medsent.core.errors import ConfigError, RunError
from medsent.core.runs import read_json, write_json

log = logging.getLogger(__name__)

ONNX_DIR = "onnx"
ONNX_FILE = "model.onnx"
ONNX_META = "export.json"
OPSET = 18
TOLERANCE = 1e-4
# float16 lookup tables round each entry to 11 bits: probabilities move by ~1e-4 (measured 1.0e-4 at
# most on webmd_val for a WebMD TextCNN student, no answer changed); a graph is refused above this.
TOLERANCE_HALF = 1e-3
# 512 MB of float32 tables (256 MB float16): a 21K-word vocabulary at (3, 4, 5) x 500 filters fits.
LOOKUP_MAX_NUMBERS = 1 << 27
TABLE_TYPES = ("fp16", "fp32")
LOOKUP_BATCH_MARGIN = 1.5  # onnxruntime keeps a lookup graph's batches unless 1.5x slower than PyTorch
ALWAYS_ORT = 1 << 30  # an ort_max_rows that sends every batch to onnxruntime
SMALL_BATCH = 8  # rows; below this onnxruntime's lower call overhead wins for every model measured
QUANTIZE_TYPES = ("int8",)
INT8_MAX_F1_LOSS = 0.005  # macro-F1 an int8 graph may lose against float32 on the check reviews


def onnx_path(run_dir: Path) -> Path:
    return run_dir / ONNX_DIR / ONNX_FILE


def onnx_enabled() -> bool:
    """onnxruntime is used when a run has an export, it is installed, and MEDSENT_ONNX is not 0."""
    if os.environ.get("MEDSENT_ONNX", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _refuse_external_data(path: Path) -> None:
    """A run's graph must carry its own weights: external-data references could make onnxruntime read
    any file on the machine into a tensor."""
    try:
        import onnx
        from onnx.external_data_helper import uses_external_data
    except ImportError:  # onnxruntime alone installed: nothing to parse the graph with
        return
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and friends for a corrupt file
        raise RunError(
            f"cannot load {path}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from None
    tensors = list(model.graph.initializer) + [
        a.t for node in model.graph.node for a in node.attribute if a.type == onnx.AttributeProto.TENSOR
    ]
    if any(uses_external_data(t) for t in tensors):
        raise RunError(f"{path} refers to external weight files; refusing to load it")


class OrtNetwork:
    """Called like the torch module inside ``predict_logits``: tensors in, logits tensor out."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        _refuse_external_data(path)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own error types for a corrupt file
            raise RunError(f"cannot load {path}: {str(exc).splitlines()[0]}") from None

    backend = "onnxruntime"

    def eval(self) -> OrtNetwork:
        return self

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        feeds = {
            "input_ids": input_ids.numpy().astype(np.int64),
            "attention_mask": attention_mask.numpy().astype(np.int64),
        }
        (logits,) = self.session.run(["logits"], feeds)
        return torch.from_numpy(np.asarray(logits, dtype=np.float32))


class _LogitsOnly(torch.nn.Module):
    """The network with a fixed (input_ids, attention_mask) -> logits signature, mask as int64."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.net(input_ids, attention_mask)


def write_onnx(
    predictor: Any,
    folder: Path,
    probe_texts: list[str] | None = None,
    compact: bool = False,
    tables: str = "fp16",
    quantize: str | None = None,
    check: tuple[list[str], np.ndarray] | None = None,
) -> dict[str, Any]:
    """Export ``predictor``'s PyTorch network into ``folder`` and check it against PyTorch.

    ``tables``: the number type of a lookup graph's tables (fp16 halves the file). Refuses a graph
    whose probabilities differ by more than ``TOLERANCE`` (``TOLERANCE_HALF`` for fp16 tables);
    returns export.json's content (also written into ``folder``), including the batch size up to
    which onnxruntime wins. ``quantize="int8"`` (transformer runs): the checked float32 graph's
    weights become int8 (onnxruntime dynamic quantization), scored against PyTorch on ``check``'s
    labelled reviews and refused if it loses more than ``INT8_MAX_F1_LOSS`` macro-F1.
    """
    if quantize not in (None, *QUANTIZE_TYPES):
        raise ConfigError(f"unknown quantization '{quantize}'; known: {', '.join(QUANTIZE_TYPES)}")
    if quantize and check is None:
        raise ConfigError("--quantize int8 needs labelled reviews to check the graph on: --data VAL.csv")
    if tables not in TABLE_TYPES:
        raise ConfigError(f"unknown table type '{tables}'; known: {', '.join(TABLE_TYPES)}")
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            f"ONNX export needs onnx, onnxscript and onnxruntime installed ({exc.name} missing)"
        ) from None
    clf = predictor.model
    net = getattr(clf, "model", None)
    if not isinstance(net, torch.nn.Module):
        raise ConfigError(
            f"run {predictor.run_dir} holds a '{predictor.model_name}' model; ONNX export is for neural runs"
        )
    graph_net, form = (net, "network") if compact else _graph_form(net, half=tables == "fp16")
    wrapped = _LogitsOnly(graph_net).eval()
    example_ids = torch.ones((2, 16), dtype=torch.long)
    example_mask = torch.ones((2, 16), dtype=torch.long)
    batch = torch.export.Dim("batch", min=1, max=4096)
    length = torch.export.Dim("length", min=2, max=8192)
    start = time.perf_counter()
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's notes on shape names and deprecations
        program = torch.onnx.export(
            wrapped,
            (example_ids, example_mask),
            dynamo=True,
            opset_version=OPSET,
            input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            dynamic_shapes={"input_ids": {0: batch, 1: length}, "attention_mask": {0: batch, 1: length}},
            optimize=True,
            verbose=False,
        )
    if program is None:
        raise RunError("torch.onnx.export returned no program")
    program.save(str(folder / ONNX_FILE), external_data=False)
    seconds = time.perf_counter() - start
    diff = _check(predictor, folder / ONNX_FILE, probe_texts)
    table_type = getattr(graph_net, "table_type", None) if form == "lookup" else None
    tolerance = TOLERANCE_HALF if table_type == "fp16" else TOLERANCE
    if not diff <= tolerance:  # NaN (a graph that overflows) is refused too
        raise RunError(
            f"ONNX probabilities differ from PyTorch by {diff:.2e} (> {tolerance}); export refused"
            + (" (try --tables fp32)" if table_type == "fp16" else "")
        )
    quantized: dict[str, Any] = {}
    if quantize == "int8":
        assert check is not None
        quantized = _quantize_int8(predictor, folder / ONNX_FILE, *check)
    timing = _batch_timing(predictor, folder / ONNX_FILE)
    # Single reviews always go to onnxruntime; big batches only where it measured faster here, or,
    # for a lookup graph, not clearly slower: the two measure level within noise, and PyTorch's
    # batches would build a second copy of the tables in memory. An int8 graph answers every batch,
    # so a review gets the same answer whatever batch it comes in.
    margin = LOOKUP_BATCH_MARGIN if form == "lookup" else 1.0
    faster = timing["onnxruntime"] <= timing["native"] * margin
    max_rows = ALWAYS_ORT if faster or quantize else SMALL_BATCH
    meta = {
        "format": "onnx",
        "file": ONNX_FILE,
        "graph": form,
        "tables": table_type,
        "quantized": quantize,
        **quantized,
        "onnx_max_rows": max_rows,
        "batch64_ms_per_review": timing,
        "opset": OPSET,
        "inputs": ["input_ids", "attention_mask"],
        "output": "logits",
        "max_abs_prob_diff": diff,
        "export_seconds": seconds,
        "torch": torch.__version__,
    }
    write_json(folder / ONNX_META, meta)
    return meta


def _quantize_int8(predictor: Any, path: Path, texts: list[str], labels: np.ndarray) -> dict[str, Any]:
    """Replace the float32 graph at ``path`` by its int8-weight form (onnxruntime dynamic
    quantization: int8 weights, activations quantized per batch at run time) if it keeps the
    answers: the macro-F1 of both on ``texts`` (with the run's calibration and decision rule) may
    differ by at most ``INT8_MAX_F1_LOSS``."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from sklearn.metrics import f1_score

    tmp = path.with_name("model.int8.onnx")
    try:
        # The quantizer logs a suggestion to the root logger on every call; it is not for our users.
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)
        try:
            quantize_dynamic(str(path), str(tmp), weight_type=QuantType.QInt8, per_channel=True)
        finally:
            root.setLevel(level)
    except Exception as exc:  # onnxruntime's quantizer raises its own error types
        raise RunError(f"int8 quantization failed: {str(exc).splitlines()[0][:200]}") from None
    reference = predictor.decide(predictor.predict_proba(texts))
    clf = predictor.model
    original = clf.model
    clf.model = OrtNetwork(tmp)
    try:
        answers = predictor.decide(predictor.predict_proba(texts))
    finally:
        clf.model = original
    f1_float = float(f1_score(labels, reference, labels=[0, 1, 2], average="macro", zero_division=0))
    f1_int8 = float(f1_score(labels, answers, labels=[0, 1, 2], average="macro", zero_division=0))
    changed = float(np.mean(reference != answers)) if len(texts) else 0.0
    if f1_float - f1_int8 > INT8_MAX_F1_LOSS:
        tmp.unlink(missing_ok=True)
        raise RunError(
            f"the int8 graph loses {f1_float - f1_int8:.4f} macro-F1 on the {len(texts)} check reviews "
            f"(> {INT8_MAX_F1_LOSS}; {changed:.1%} of answers changed); export refused"
        )
    size = path.stat().st_size
    os.replace(tmp, path)
    return {
        "int8_check": {
            "reviews": len(texts),
            "answers_changed": changed,
            "macro_f1_float32": f1_float,
            "macro_f1_int8": f1_int8,
            "macro_f1_change": f1_int8 - f1_float,
            "float32_megabytes": round(size / 2**20, 1),
        }
    }


def _graph_form(net: torch.nn.Module, half: bool = False) -> tuple[torch.nn.Module, str]:
    """The module to export: the model's table-lookup ``inference_form`` where it has one whose
    tables fit in ``LOOKUP_MAX_NUMBERS`` floats, else the network as trained.

    A TextCNN's single-review cost is its first convolution (~0.6 ms of 0.8 at 100 filters, linear
    in the filters); as gathers and adds it is a few microseconds whatever the width, for a larger
    file (vocabulary x kernel widths x filters floats)."""
    form = getattr(net, "inference_form", None)
    if callable(form):
        lookup = form(max_numbers=LOOKUP_MAX_NUMBERS, half=half)
        if isinstance(lookup, torch.nn.Module):
            return lookup.eval(), "lookup"
    return net, "network"


DEFAULT_PROBES = [
    "This medicine gave me terrible headaches and I could not sleep.",
    "Works fine.",
    "I have been on it for three years. At first the nausea was bad, but after a month it went away and "
    "my blood pressure is finally under control. I would recommend it, though the price is high.",
    "ok",
    "Not sure yet, it's only been a week. Some dizziness but nothing major so far, we will see.",
]


def _check(predictor: Any, path: Path, texts: list[str] | None) -> float:
    """Largest absolute probability difference between PyTorch and onnxruntime on the probe texts."""
    probes = (texts or []) + DEFAULT_PROBES
    reference = predictor.predict_proba(probes, calibrated=False)
    clf = predictor.model
    original = clf.model
    clf.model = OrtNetwork(path)
    try:
        exported = predictor.predict_proba(probes, calibrated=False)
    except Exception as exc:  # onnxruntime's own error types: a graph that cannot run is not exported
        raise RunError(f"the exported graph fails in onnxruntime: {str(exc).splitlines()[0][:200]}") from None
    finally:
        clf.model = original
    return float(np.abs(reference - exported).max())


def ort_max_rows(run_dir: Path) -> int:
    """The batch size up to which onnxruntime runs (export.json; MEDSENT_ONNX_MAX_ROWS overrides)."""
    env = os.environ.get("MEDSENT_ONNX_MAX_ROWS", "").strip()
    if env.isdigit():
        return int(env)
    meta = read_export(run_dir) or {}
    value = meta.get("onnx_max_rows")
    return int(value) if isinstance(value, int) and value >= 0 else ALWAYS_ORT


def _batch_timing(predictor: Any, path: Path, reps: int = 3) -> dict[str, float]:
    """ms per review for a 64-review batch in each engine (best of ``reps``)."""
    texts = (DEFAULT_PROBES * 13)[:64]
    clf = predictor.model
    original = clf.model
    out = {}
    has_fast = hasattr(clf, "_fast")  # word models send batches to their PyTorch lookup form...
    fast = getattr(clf, "_fast", None)
    for name, net in (("native", original), ("onnxruntime", OrtNetwork(path))):
        clf.model = net
        if has_fast and name == "onnxruntime":
            clf._fast = False  # ...so switch it off to time the graph itself
        best = float("inf")
        for _ in range(reps):
            start = time.perf_counter()
            predictor.predict_proba(texts, calibrated=False)
            best = min(best, time.perf_counter() - start)
        out[name] = best * 1000 / len(texts)
    clf.model = original
    if has_fast:
        clf._fast = fast
    return out


def read_export(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / ONNX_DIR / ONNX_META
    return read_json(path) if path.exists() else None
