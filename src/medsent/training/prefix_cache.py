"""The frozen-prefix cache: a frozen encoder bottom computed once per review, not once per epoch.

When the embeddings and the bottom K layers of an encoder are frozen, their output for a review never
changes during training. It is computed once, in eval mode (no dropout), and stored as float16 in
memory-mapped chunks; every epoch then runs only layers K+1..N and the head. On two CPU cores the
frozen layers' forward pass is most of a step when K is large, and validation needs no encoder
bottom at all after the first epoch.

The store is keyed by a content hash of exactly the weights that decide the prefix (embeddings and
bottom K layers), K, the maximum length and the truncation rule; inside it each row is keyed by a
digest of the review's token ids. So a later epoch, ``train --resume``, another seed or an ablation
variant that shares the folder (``transformer.cache_dir``) reuses every review already computed,
and a changed encoder, K or tokenisation can never read a stale row. A chunk is written data first,
index last, each through a rename: a killed build leaves whole chunks and recomputes the rest.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medsent.core.config import TransformerConfig
from medsent.core.errors import ConfigError

log = logging.getLogger(__name__)

FLOAT16_MAX = float(np.finfo(np.float16).max)
CHUNK_ROWS = 1024  # reviews per chunk file: a kill loses at most this much work


def cache_active(tcfg: TransformerConfig, cuda: bool) -> bool:
    """Whether training reads the frozen prefix from the cache (``auto``: K > 0 on a CPU).

    The prefix is frozen only when the embeddings are too, and stays frozen only without gradual
    unfreezing; ``on`` with either is a configuration error rather than a silently stale cache."""
    if tcfg.cache_frozen == "off" or tcfg.freeze_layers == 0:
        return False
    fixed = tcfg.freeze_embeddings and not tcfg.gradual_unfreeze
    if tcfg.cache_frozen == "on":
        if not fixed:
            raise ConfigError(
                "transformer.cache_frozen=on needs freeze_embeddings=true and gradual_unfreeze=false "
                "(otherwise the bottom of the encoder changes during training)"
            )
        return True
    return fixed and not cuda


def prefix_fingerprint(model: Any, layers: int) -> str:
    """sha256 over the bytes of every tensor the prefix reads: the embeddings, the tables shared by
    all layers (MPNet's relative position bias) and the bottom ``layers`` layers."""
    from medsent.models.transformer import encoder_embeddings, encoder_layers, shared_tables

    digest = hashlib.sha256(type(model.encoder).__name__.encode())
    parts = [encoder_embeddings(model.encoder), *list(encoder_layers(model.encoder))[:layers]]
    tensors = [t for part in parts for _, t in sorted(part.state_dict().items())]
    for tensor in [*tensors, *shared_tables(model.encoder)]:
        digest.update(f"{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def row_keys(ids: Sequence[Sequence[int]]) -> list[bytes]:
    """16-byte digests of each review's token ids: equal ids, equal hidden states."""
    return [hashlib.blake2b(np.asarray(x, dtype=np.int32).tobytes(), digest_size=16).digest() for x in ids]


@dataclass
class PrefixRows:
    """Each review's cached hidden states (length x hidden, float16, memory-mapped), in input order."""

    chunks: list[np.ndarray]
    where: list[tuple[int, int, int]]  # (chunk, first row, length) per review

    def __len__(self) -> int:
        return len(self.where)

    def __getitem__(self, i: int) -> np.ndarray:
        chunk, start, length = self.where[i]
        return self.chunks[chunk][start : start + length]


def padded(rows: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids padded with 0 to the longest row, and the mask of real tokens (which alone decides
    what the encoder attends to, so the pad id does not matter)."""
    width = max(len(r) for r in rows)
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.bool)
    for j, r in enumerate(rows):
        ids[j, : len(r)] = torch.as_tensor(list(r), dtype=torch.long)
        mask[j, : len(r)] = True
    return ids, mask


@torch.inference_mode()
def split_matches(model: Any, sample: Sequence[Sequence[int]], layers: int, tol: float = 1e-4) -> bool:
    """Whether running the prefix and then the rest gives the uncached logits (float32, eval mode)
    for a few reviews: a check that this encoder family can be cut between layers at all."""
    was_training = model.training
    model.eval()
    try:
        ids, mask = padded(sample)
        full = model(ids, mask)
        model.prefix_layers = layers
        split = model(model.prefix(ids, mask, layers), mask)
        return bool((full - split).abs().max() <= tol)
    finally:
        model.train(was_training)


class PrefixStore:
    """One folder of cached prefixes for one (prefix weights, K, max_length, truncation)."""

    def __init__(self, root: Path, model: Any, tcfg: TransformerConfig) -> None:
        self.model = model
        self.layers = tcfg.freeze_layers
        fingerprint = prefix_fingerprint(model, self.layers)
        cut = tcfg.truncation if tcfg.truncation == "head" else f"head_tail{tcfg.head_fraction:g}"
        self.folder = root / f"{fingerprint[:20]}-k{self.layers}-len{tcfg.max_length}-{cut}"
        self.computed = 0
        self.build_seconds = 0.0

    def _index(self) -> tuple[list[np.ndarray], dict[bytes, tuple[int, int, int]]]:
        chunks: list[np.ndarray] = []
        where: dict[bytes, tuple[int, int, int]] = {}
        for index in sorted(self.folder.glob("chunk-*.index.npz")):
            data = index.with_name(index.name.replace(".index.npz", ".npy"))
            try:
                with np.load(index, allow_pickle=False) as saved:
                    keys, starts, lengths = saved["keys"], saved["starts"], saved["lengths"]
                rows = np.load(data, mmap_mode="r", allow_pickle=False)
                if rows.ndim != 2 or int(starts[-1] + lengths[-1]) > rows.shape[0]:
                    raise ValueError("rows do not match the index")
            except (OSError, ValueError, KeyError, IndexError, zipfile.BadZipFile):  # cut short by a kill
                log.warning("prefix cache: %s is damaged; its reviews are computed again", index.name)
                index.unlink(missing_ok=True)
                data.unlink(missing_ok=True)
                continue
            c = len(chunks)
            chunks.append(rows)
            for key, s, n in zip(keys, starts, lengths, strict=True):
                where[key.tobytes()] = (c, int(s), int(n))
        return chunks, where

    def rows(self, ids: Sequence[Sequence[int]], batch_size: int, precision: str) -> PrefixRows:
        """The prefix of every review in ``ids``, computing (and storing) only the missing ones."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            parent = self.folder.parent
            raise ConfigError(f"cannot create the frozen-prefix cache in {parent}: {exc}") from None
        keys = row_keys(ids)
        _, where = self._index()
        todo: dict[bytes, Sequence[int]] = {}
        for key, row in zip(keys, ids, strict=True):
            if key not in where:
                todo.setdefault(key, row)
        log.info(
            "frozen-prefix cache: %d of %d reviews to compute (%d layers), in %s",
            len(todo),
            len(ids),
            self.layers,
            self.folder,
        )
        if todo:
            start = time.perf_counter()
            self._build(list(todo.items()), batch_size, precision)
            self.build_seconds = time.perf_counter() - start
            self.computed = len(todo)
        chunks, where = self._index()
        return PrefixRows(chunks, [where[k] for k in keys])

    @torch.inference_mode()
    def _build(self, todo: list[tuple[bytes, Sequence[int]]], batch_size: int, precision: str) -> None:
        from tqdm.auto import tqdm

        model = self.model
        was_training = model.training
        model.eval()  # no dropout in the part that is computed once
        # Longest first inside each chunk: batches pad little, and memory peaks early.
        todo = sorted(todo, key=lambda kv: -len(kv[1]))
        bar = tqdm(total=len(todo), desc="frozen-prefix cache", unit="review", disable=None)
        try:
            for c0 in range(0, len(todo), CHUNK_ROWS):
                part = todo[c0 : c0 + CHUNK_ROWS]
                lengths = np.array([len(r) for _, r in part], dtype=np.int64)
                starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
                out = np.zeros((int(lengths.sum()), self._hidden()), dtype=np.float16)
                for b0 in range(0, len(part), batch_size):
                    ids, mask = padded([r for _, r in part[b0 : b0 + batch_size]])
                    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16-mixed"):
                        hidden = model.prefix(ids, mask, self.layers).float()
                    peak = float(hidden.abs().max()) if hidden.numel() else 0.0
                    if not np.isfinite(peak) or peak > FLOAT16_MAX:
                        raise ConfigError(
                            f"the frozen prefix's hidden states reach {peak:.3g}, beyond float16; "
                            "set transformer.cache_frozen=off"
                        )
                    for j in range(hidden.shape[0]):
                        n = int(lengths[b0 + j])
                        s = int(starts[b0 + j])
                        out[s : s + n] = hidden[j, :n].numpy()
                    bar.update(hidden.shape[0])
                keys = np.frombuffer(b"".join(k for k, _ in part), dtype=np.uint8).reshape(len(part), 16)
                self._write(keys, starts, lengths, out)
        finally:
            bar.close()
            model.train(was_training)

    def _hidden(self) -> int:
        return int(self.model.feature_dim)

    def _write(self, keys: np.ndarray, starts: np.ndarray, lengths: np.ndarray, rows: np.ndarray) -> None:
        name = hashlib.sha256(keys.tobytes()).hexdigest()[:24]
        data = self.folder / f"chunk-{name}.npy"
        # Temporary names are per process: DDP ranks may fill the same chunk side by side.
        tmp = self.folder / f".chunk-{name}.{os.getpid()}.tmp.npy"
        np.save(tmp, rows)
        os.replace(tmp, data)
        tmp_index = self.folder / f".chunk-{name}.{os.getpid()}.tmp.npz"
        np.savez(tmp_index, keys=keys, starts=starts, lengths=lengths)
        os.replace(tmp_index, self.folder / f"chunk-{name}.index.npz")

    def nbytes(self) -> int:
        return sum(p.stat().st_size for p in self.folder.glob("chunk-*"))
