"""The frozen-prefix cache on tiny randomly initialised encoders of the two families medsent ships
(MPNet and BERT/MiniLM), built from their configs: no weights, no tokenizer, no network."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from medsent.core.config import TransformerConfig
from medsent.core.errors import ConfigError
from medsent.models.transformer import TransformerClassifier
from medsent.neural.batching import PadCollator
from medsent.training.data import EncodedDataset
from medsent.training.prefix_cache import PrefixStore, cache_active, row_keys, split_matches

HIDDEN = 32


def tiny(family: str, seed: int = 0) -> TransformerClassifier:
    from transformers import BertConfig, BertModel, MPNetConfig, MPNetModel

    torch.manual_seed(seed)
    shape = {
        "vocab_size": 120,
        "hidden_size": HIDDEN,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "intermediate_size": 64,
    }
    encoder = MPNetModel(MPNetConfig(**shape)) if family == "mpnet" else BertModel(BertConfig(**shape))
    return TransformerClassifier(encoder, HIDDEN)


def reviews(n: int, seed: int = 1) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [[2, *rng.integers(5, 120, size=int(rng.integers(3, 40))).tolist(), 3] for _ in range(n)]


def cfg(k: int, **extra: Any) -> TransformerConfig:
    return TransformerConfig(**{"freeze_layers": k, "freeze_embeddings": True, "max_length": 64, **extra})


@pytest.mark.parametrize("family", ["mpnet", "bert"])
@pytest.mark.parametrize("k", [1, 3])
def test_cached_path_gives_the_uncached_logits(tmp_path: Path, family: str, k: int) -> None:
    """Token ids through the whole encoder and float16 memory-mapped prefixes through the layers
    above K, batched by the training collator: the same logits in eval mode, to 1e-4 (plus
    float16's own relative rounding, 2^-11, on the larger logits)."""
    model = tiny(family).eval()
    ids = reviews(40)
    rows = PrefixStore(tmp_path, model, cfg(k)).rows(ids, batch_size=8, precision="32-true")
    assert isinstance(rows.chunks[0], np.memmap) and rows.chunks[0].dtype == np.float16
    collate = PadCollator([64], pad_id=0, static=False)
    plain, cached = EncodedDataset(ids, [0] * len(ids)), EncodedDataset(ids, [0] * len(ids), prefix=rows)
    order = list(range(len(ids)))
    with torch.no_grad():
        for start in range(0, len(ids), 16):
            part = order[start : start + 16]
            a, b = collate([plain[i] for i in part]), collate([cached[i] for i in part])
            assert b["input_ids"].dtype == torch.float32 and b["input_ids"].shape[2] == HIDDEN
            model.prefix_layers = 0
            full = model(a["input_ids"], a["attention_mask"])
            model.prefix_layers = k
            split = model(b["input_ids"], b["attention_mask"])
            assert torch.allclose(full, split, atol=1e-4, rtol=2**-11), (full - split).abs().max()
            assert full.std() > 0.05  # the head reads real signal, not zeros


def test_the_split_is_exact_before_float16_storage() -> None:
    model = tiny("mpnet").eval()
    assert split_matches(model, reviews(6), 2, tol=1e-6)


def test_cache_is_reused_and_keyed_by_weights_depth_and_tokens(tmp_path: Path) -> None:
    model = tiny("bert")
    ids = reviews(30)
    first = PrefixStore(tmp_path, model, cfg(2))
    first.rows(ids, 8, "32-true")
    assert first.computed == 30
    again = PrefixStore(tmp_path, model, cfg(2))
    rows = again.rows([*ids[10:], ids[0], ids[0]], 8, "32-true")  # other order, repeats: all cached
    assert again.computed == 0 and len(rows) == 22 and again.folder == first.folder
    assert np.array_equal(rows[20], rows[21])
    extra = PrefixStore(tmp_path, model, cfg(2))
    extra.rows([*ids, [2, 7, 7, 3]], 8, "32-true")
    assert extra.computed == 1  # a new review only
    assert PrefixStore(tmp_path, model, cfg(3)).folder != first.folder  # another depth
    assert PrefixStore(tmp_path, model, cfg(2, max_length=32)).folder != first.folder
    assert PrefixStore(tmp_path, model, cfg(2, truncation="head")).folder != first.folder
    with torch.no_grad():
        model.encoder.embeddings.word_embeddings.weight[5] += 1.0  # the prefix's weights changed
    assert PrefixStore(tmp_path, model, cfg(2)).folder != first.folder
    before = PrefixStore(tmp_path, tiny("bert"), cfg(2)).folder
    above = tiny("bert")
    with torch.no_grad():
        encoder: Any = above.encoder
        encoder.encoder.layer[3].output.dense.weight += 1.0  # a layer above the prefix: same cache
    assert PrefixStore(tmp_path, above, cfg(2)).folder == before
    assert row_keys([[1, 2, 3]]) == row_keys([[1, 2, 3]]) != row_keys([[1, 2, 4]])


def test_frozen_bottom_of_mpnet_takes_no_part_in_backpropagation(tmp_path: Path) -> None:
    """MPNet's relative position bias is read by every layer: frozen with the embeddings, nothing
    below layer K needs a gradient, so backpropagation stops there (with the table trainable it ran
    through every frozen layer), and the cache is keyed by the table too."""
    from medsent.neural.hf import freeze

    model = tiny("mpnet").train()
    freeze(model, cfg(2))
    encoder: Any = model.encoder
    assert not encoder.encoder.relative_attention_bias.weight.requires_grad
    ids, mask = torch.randint(5, 120, (3, 10)), torch.ones(3, 10, dtype=torch.bool)
    assert not model.prefix(ids, mask, 2).requires_grad
    model(ids, mask).sum().backward()
    below = [*encoder.embeddings.parameters(), *encoder.encoder.layer[:2].parameters()]
    assert all(p.grad is None for p in below)
    assert all(p.grad is not None for p in encoder.encoder.layer[2:].parameters())
    before = PrefixStore(tmp_path, model, cfg(2)).folder
    with torch.no_grad():
        encoder.encoder.relative_attention_bias.weight += 1.0
    assert PrefixStore(tmp_path, model, cfg(2)).folder != before


def test_a_cache_folder_that_cannot_be_made_is_a_one_line_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match="cannot create the frozen-prefix cache"):
        PrefixStore(blocker, tiny("bert"), cfg(2)).rows(reviews(2), 2, "32-true")


def test_a_damaged_chunk_is_computed_again(tmp_path: Path) -> None:
    model = tiny("mpnet")
    ids = reviews(12)
    store = PrefixStore(tmp_path, model, cfg(2))
    good = [store.rows(ids, 4, "32-true")[i].copy() for i in range(12)]
    index = next(store.folder.glob("chunk-*.index.npz"))
    index.write_bytes(index.read_bytes()[:20])  # a kill in the middle of writing it
    again = PrefixStore(tmp_path, model, cfg(2))
    rows = again.rows(ids, 4, "32-true")
    assert again.computed == 12
    assert all(np.array_equal(rows[i], good[i]) for i in range(12))
    assert not list(store.folder.glob(".chunk-*"))  # no temporary file left behind


def test_the_cache_computes_in_eval_mode_and_restores_training_mode(tmp_path: Path) -> None:
    model = tiny("bert").train()
    ids = reviews(8)
    a = PrefixStore(tmp_path / "a", model, cfg(2)).rows(ids, 4, "32-true")
    assert model.training
    b = PrefixStore(tmp_path / "b", model, cfg(2)).rows(ids, 4, "32-true")
    assert all(np.array_equal(a[i], b[i]) for i in range(8))  # no dropout: the same both times


def test_when_the_cache_is_used() -> None:
    assert cache_active(cfg(4), cuda=False)
    assert not cache_active(cfg(4), cuda=True)  # a GPU recomputes the bottom faster than it reads it
    assert cache_active(cfg(4, cache_frozen="on"), cuda=True)
    assert not cache_active(cfg(0), cuda=False)
    assert not cache_active(cfg(4, cache_frozen="off"), cuda=False)
    moving = TransformerConfig(freeze_layers=4, freeze_embeddings=False)
    assert not cache_active(moving, cuda=False)  # the embeddings train: nothing below is fixed
    assert not cache_active(cfg(4, gradual_unfreeze=True), cuda=False)
    with pytest.raises(ConfigError, match="freeze_embeddings"):
        cache_active(TransformerConfig(freeze_layers=4, cache_frozen="on"), cuda=False)


class _FinalNorm(nn.Module):
    """An encoder whose forward ends in a norm over the last layer's output: it cannot be cut."""

    def __init__(self) -> None:
        super().__init__()
        self.embeddings = nn.Embedding(50, HIDDEN)
        self.encoder = nn.Module()
        self.encoder.layer = nn.ModuleList([nn.Linear(HIDDEN, HIDDEN) for _ in range(3)])
        self.norm = nn.LayerNorm(HIDDEN)

    def forward(self, input_ids: Any = None, attention_mask: Any = None, inputs_embeds: Any = None) -> Any:
        h = self.embeddings(input_ids=input_ids, inputs_embeds=inputs_embeds)
        for layer in self.encoder.layer:
            h = torch.tanh(layer(h))
        return type("Out", (), {"last_hidden_state": self.norm(h) * 3.0})()


class _Embed(nn.Embedding):
    def forward(self, input_ids: Any = None, inputs_embeds: Any = None) -> Any:  # type: ignore[override]
        return super().forward(input_ids)


def test_an_encoder_that_cannot_be_cut_is_detected() -> None:
    encoder = _FinalNorm()
    encoder.embeddings = _Embed(50, HIDDEN)
    model = TransformerClassifier(encoder, HIDDEN).eval()
    assert not split_matches(model, [[1, 2, 3, 4], [5, 6]], 1)


@pytest.mark.slow
def test_a_transformer_run_trains_from_the_cache(transformer_run: Path) -> None:
    """The shared tiny MiniLM run (5 of 6 layers frozen, on a CPU) read its prefix from the cache,
    and the work folder with the cache was removed once the run was committed."""
    metrics = json.loads((transformer_run / "metrics.json").read_text())
    info = metrics["prefix_cache"]
    assert info["layers"] == 5 and info["computed"] == info["reviews"] > 0
    assert not Path(info["folder"]).exists()
    assert metrics["val"]["n"] > 0
