"""Neural inference from a run folder: safetensors weights + tokenizer.json, no Lightning import."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from medsent.core.config import RunConfig
from medsent.core.errors import RunError
from medsent.core.runs import RunFolder
from medsent.data.negation import model_text
from medsent.inference.onnx import ALWAYS_ORT
from medsent.models.registry import get_model_spec, negation_for
from medsent.neural.batching import PadCollator
from medsent.neural.vocab import PAD_ID, WordVocab

WEIGHTS = "model.safetensors"


def text_view(texts: Sequence[str], cfg: RunConfig) -> list[str]:
    """What a word-level model reads: tokenized, lower-cased, negation-tagged per config."""
    return [model_text(t, negation_for(cfg), cfg.text.lowercase) for t in texts]


def _length_batches(
    ids: list[list[int]], buckets: Sequence[int], batch_size: int, pad_id: int
) -> Iterator[tuple[np.ndarray, dict[str, torch.Tensor]]]:
    """(row indices, padded batch): rows sorted by length so each batch pads to a small bucket."""
    collate = PadCollator(buckets, pad_id)
    order = np.argsort([len(x) for x in ids], kind="stable")
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        yield idx, collate([(ids[i], 0) for i in idx])


@torch.inference_mode()
def predict_logits(
    model: torch.nn.Module,
    ids: list[list[int]],
    buckets: Sequence[int],
    batch_size: int = 256,
    pad_id: int = PAD_ID,
) -> np.ndarray:
    """Logits in input order."""
    out = np.zeros((len(ids), 3), dtype=np.float32)
    for idx, batch in _length_batches(ids, buckets, batch_size, pad_id):
        out[idx] = model(batch["input_ids"], batch["attention_mask"]).float().numpy()
    return out


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=1, keepdims=True), dtype=np.float64)


class RoutedNetwork:
    """onnxruntime for batches of up to ``ort_max_rows`` rows, the torch module above that.

    Which engine is faster depends on the batch: onnxruntime wins single reviews everywhere here,
    PyTorch wins large batches of the recurrent and transformer models. ``medsent export`` measures
    both and stores the cut-off; the torch weights are only loaded once a large batch needs them.
    """

    def __init__(self, ort: Any, load_torch: Callable[[], torch.nn.Module], ort_max_rows: int) -> None:
        self.ort = ort
        self.load_torch = load_torch
        self.ort_max_rows = ort_max_rows
        self._torch: torch.nn.Module | None = None

    @property
    def backend(self) -> str:
        return (
            "onnxruntime"
            if self.ort_max_rows >= ALWAYS_ORT
            else f"onnxruntime (<= {self.ort_max_rows} rows)+native"
        )

    def eval(self) -> RoutedNetwork:
        return self

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if input_ids.shape[0] <= self.ort_max_rows:
            return self.ort(input_ids, attention_mask)
        if self._torch is None:
            self._torch = self.load_torch().eval()
        return self._torch(input_ids, attention_mask)


def _route(onnx_file: Path | None, load_torch: Callable[[], torch.nn.Module], ort_max_rows: int) -> Any:
    if onnx_file is None:
        return load_torch()
    from medsent.inference.onnx import OrtNetwork

    return RoutedNetwork(OrtNetwork(onnx_file), load_torch, ort_max_rows)


def _torch_of(model: Any, load_torch: Callable[[], torch.nn.Module] | None) -> torch.nn.Module:
    """The PyTorch network behind a loaded model (loaded now when onnxruntime serves it)."""
    if isinstance(model, torch.nn.Module):
        return model.eval()
    if isinstance(model, RoutedNetwork):
        return model.load_torch().eval()
    if load_torch is None:
        raise RunError("this run has no PyTorch network to differentiate")
    return load_torch().eval()


class _TorchBacked:
    """A loaded model whose PyTorch network stays reachable for gradients (attributions), whatever
    engine serves its predictions."""

    model: Any
    _load_torch: Callable[[], torch.nn.Module] | None
    _torch_net: torch.nn.Module | None = None

    def torch_network(self) -> torch.nn.Module:
        """Loaded once, on first use."""
        if self._torch_net is None:
            self._torch_net = _torch_of(self.model, self._load_torch)
        return self._torch_net


def batch_size_for(model: Any, rows: int, default: int) -> int:
    """A handful of requests (a server's micro-batch) goes through onnxruntime one review at a time:
    measured on 2 CPU cores, a MiniLM review costs 15.9 ms alone but 19-20 ms inside length-sorted
    groups of 8 and 27.7 ms in one padded batch of 32 real reviews. Files keep the large batch."""
    small = getattr(model, "ort_max_rows", None)
    if isinstance(small, int) and 0 < small < ALWAYS_ORT and rows <= 8 * small:
        return 1
    return default


FAST_MIN_ROWS = 8  # below this a batch goes to self.model (onnxruntime where exported)
FAST_BATCH = 64


class NeuralClassifier(_TorchBacked):
    """A trained word-level network rebuilt from its run folder alone.

    Batches of files and servers go through the model's ``inference_form`` where it has one (the
    TextCNN's table-lookup form: the same function, ~8x faster on a CPU); single reviews and models
    without one through the network as loaded (or its onnxruntime graph). An onnxruntime graph that
    is itself the lookup form (``ort_lookup``) serves the batches too: as fast, and no second copy
    of the tables is built in PyTorch.
    """

    def __init__(
        self, model: Any, vocab: WordVocab, cfg: RunConfig, load_torch: Any = None, ort_lookup: Any = None
    ) -> None:
        self.model = model.eval()
        self.vocab = vocab
        self.cfg = cfg
        self._load_torch = load_torch
        self._ort_lookup = ort_lookup
        self._fast: Any = None

    def _fast_net(self) -> Any:
        if self._fast is None and self._ort_lookup is not None:
            self._fast = self._ort_lookup
        if self._fast is None:
            net = self.model if isinstance(self.model, torch.nn.Module) else None
            if net is None and self._load_torch is not None:
                net = self._load_torch().eval()
            form = getattr(net, "inference_form", None)
            self._fast = (form() if callable(form) else None) or False
        return self._fast or None

    @classmethod
    def load(
        cls,
        folder: Path,
        cfg: RunConfig,
        onnx_file: Path | None = None,
        ort_max_rows: int = ALWAYS_ORT,
        onnx_is_lookup: bool = False,
    ) -> NeuralClassifier | TransformerPredictor:
        """``onnx_file``: run the exported graph in onnxruntime (for batches up to ``ort_max_rows``);
        ``onnx_is_lookup``: that graph is the model's lookup form, so it also serves large batches."""
        spec = get_model_spec(cfg.model)
        if spec.family == "transformer":
            return TransformerPredictor.load(folder, cfg, onnx_file, ort_max_rows)
        build = spec.build
        if build is None:
            raise RunError(f"model '{cfg.model}' is not a neural model")
        vocab = WordVocab.load(folder, cfg.vocab.max_len)

        def load_torch() -> torch.nn.Module:
            from medsent.neural.targets import wrap_for_targets

            model = wrap_for_targets(build(vocab.size, cfg), cfg)
            try:
                state = load_file(str(folder / WEIGHTS))
            except (OSError, Exception) as exc:  # safetensors raises its own error type on a corrupt header
                raise RunError(f"cannot load weights {folder / WEIGHTS}: {exc}") from None
            missing, unexpected = model.load_state_dict(state, strict=False)
            if missing or unexpected:
                raise RunError(
                    f"{folder / WEIGHTS} does not match the {cfg.model} config "
                    f"(missing {len(missing)}, unexpected {len(unexpected)} tensors)"
                )
            return model

        net = _route(onnx_file, load_torch, ort_max_rows)
        ort_lookup = net.ort if onnx_is_lookup and isinstance(net, RoutedNetwork) else None
        return cls(net, vocab, cfg, load_torch, ort_lookup)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        ids = self.vocab.encode(text_view(texts, self.cfg))
        fast = self._fast_net() if len(ids) >= FAST_MIN_ROWS else None
        if fast is not None:
            # Batches of 64 keep the gathered (batch x length x filters) blocks in the L2 cache:
            # 11K reviews/s on one core against 8K at 256.
            size = min(self.cfg.trainer.eval_batch_size, FAST_BATCH)
            return softmax(predict_logits(fast, ids, self.cfg.vocab.buckets, size))
        size = batch_size_for(self.model, len(ids), self.cfg.trainer.eval_batch_size)
        return softmax(predict_logits(self.model, ids, self.cfg.vocab.buckets, size))


class TransformerPredictor(_TorchBacked):
    """A fine-tuned encoder rebuilt from the run folder's Hugging Face files."""

    def __init__(
        self,
        model: Any,
        encoder: Any,
        cfg: RunConfig,
        load_torch: Callable[[], torch.nn.Module] | None = None,
    ) -> None:
        self.model = model.eval()
        self.encoder = encoder
        self.cfg = cfg
        self._load_torch = load_torch

    @classmethod
    def load(
        cls, folder: Path, cfg: RunConfig, onnx_file: Path | None = None, ort_max_rows: int = ALWAYS_ORT
    ) -> TransformerPredictor:
        from medsent.neural.hf import ENCODER_DIR, HFTextEncoder, load_transformer

        def load_torch() -> torch.nn.Module:
            from medsent.neural.targets import TaskNet, load_task_heads, wrap_for_targets

            base, _ = load_transformer(folder, cfg.transformer)
            net = wrap_for_targets(base, cfg)
            if isinstance(net, TaskNet):
                load_task_heads(net, folder)
            return net.eval()

        if onnx_file is None:
            return cls(load_torch(), HFTextEncoder.load(str(folder / ENCODER_DIR), cfg.transformer), cfg)
        encoder = HFTextEncoder.load(str(folder / ENCODER_DIR), cfg.transformer)
        return cls(_route(onnx_file, load_torch, ort_max_rows), encoder, cfg, load_torch)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        ids = self.encoder.encode(texts)
        size = batch_size_for(self.model, len(ids), 64)
        logits = predict_logits(self.model, ids, self.cfg.transformer.buckets, size, self.encoder.pad_id)
        return softmax(logits)


def load_classifier(run: RunFolder, use_onnx: bool = True) -> NeuralClassifier | TransformerPredictor:
    """Any neural run: the onnxruntime graph where the run has one (and it is enabled), the PyTorch
    network otherwise."""
    from medsent.inference.onnx import onnx_enabled, onnx_path, ort_max_rows, read_export

    cfg = run.config
    exported = onnx_path(run.path)
    use = exported if use_onnx and exported.is_file() and onnx_enabled() else None
    lookup = use is not None and (read_export(run.path) or {}).get("graph") == "lookup"
    return NeuralClassifier.load(run.file("model"), cfg, use, ort_max_rows(run.path), lookup)
