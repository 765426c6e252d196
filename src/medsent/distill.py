"""`medsent distill`: a fast model (the student) learns a slow run's answers (the teacher).

With 17K labelled reviews the word models are starved of data; a teacher can label as many reviews as
there is text. Its calibrated probabilities over the training and unlabelled reviews are computed once,
in streaming chunks, and cached in the run's work folder (a killed distillation resumes without
recomputing them); the student then trains on the teacher's softened probabilities (KL at
``distill.temperature``) plus the class loss on gold labels where they exist (``distill.alpha``), on
the same Lightning engine and presets as any run. The result is a normal run of the student's kind.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medsent.config import DistillConfig
from medsent.data.dataset import Splits
from medsent.errors import ConfigError
from medsent.predict import Predictor
from medsent.runs import run_id

log = logging.getLogger(__name__)

SOFT_COLUMNS = ("teacher_negative", "teacher_neutral", "teacher_positive")  # read by neural.fit
HINT_COLUMN = "teacher_hint"  # the teacher's pooled review vector per row (distill.hint_weight)


def _text_keys(texts: Sequence[str]) -> np.ndarray:
    """16-byte digests that identify each review text in the cache, whatever its row order."""
    return np.array(
        [np.frombuffer(hashlib.blake2b(t.encode(), digest_size=16).digest(), dtype=np.uint8) for t in texts],
        dtype=np.uint8,
    ).reshape(len(texts), 16)


def teacher_probabilities(
    teacher: Predictor, texts: Sequence[str], folder: Path, batch_rows: int
) -> np.ndarray:
    """The teacher's calibrated probabilities for ``texts`` (``teacher_outputs`` without vectors)."""
    return teacher_outputs(teacher, texts, folder, batch_rows)[0]


def teacher_outputs(
    teacher: Predictor, texts: Sequence[str], folder: Path, batch_rows: int, features: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """The teacher's calibrated probabilities for ``texts`` and, with ``features``, the pooled review
    vectors behind them, computed in chunks of ``batch_rows``.

    Each finished chunk is saved under ``folder/<teacher run id>/`` with the digests of its texts, so
    the cache is keyed by review, not by row order: a rerun after a kill computes only the missing
    reviews, and students with other seeds, temperatures or extra unlabelled files that share
    ``folder`` (``--teacher-cache``) reuse every review the teacher has already seen. Vectors are
    stored as float16 beside the probabilities; a review cached without them counts as missing
    when they are asked for."""
    from tqdm.auto import tqdm

    store = folder / run_id(teacher.run_dir)
    store.mkdir(parents=True, exist_ok=True)
    keys = _text_keys(texts)
    known: dict[bytes, np.ndarray] = {}
    vectors: dict[bytes, np.ndarray] = {}
    for path in sorted(store.glob("chunk-*.npz")):
        try:
            with np.load(path, allow_pickle=False) as saved:
                chunk = [k.tobytes() for k in saved["keys"]]
                known.update(zip(chunk, saved["probs"], strict=True))
                if "feats" in saved.files:
                    vectors.update(zip(chunk, saved["feats"], strict=True))
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):  # cut short by a kill
            log.warning("teacher cache: %s was cut short; its reviews are computed again", path.name)
            path.unlink(missing_ok=True)
    have = vectors if features else known
    missing: dict[bytes, str] = {}
    for key, text in zip(keys, texts, strict=True):
        if key.tobytes() not in have:
            missing.setdefault(key.tobytes(), text)
    todo = list(missing.items())
    log.info("teacher outputs: %d reviews to compute, the rest cached", len(todo))
    starts = range(0, len(todo), batch_rows)
    for start in tqdm(starts, desc="teacher outputs", unit="chunk", disable=None):
        part = todo[start : start + batch_rows]
        part_texts = [t for _, t in part]
        chunk_keys = np.frombuffer(b"".join(k for k, _ in part), dtype=np.uint8).reshape(len(part), 16)
        name = hashlib.sha256(chunk_keys.tobytes()).hexdigest()[:24]
        if features:
            proba, feats = teacher.proba_and_features(part_texts)
            proba, feats = np.asarray(proba, dtype=np.float32), np.asarray(feats, dtype=np.float16)
            tmp = store / f".chunk-{name}-f.tmp.npz"
            np.savez(tmp, keys=chunk_keys, probs=proba, feats=feats)
            os.replace(tmp, store / f"chunk-{name}-f.npz")
            vectors.update(zip((k for k, _ in part), feats, strict=True))
        else:
            proba = np.asarray(teacher.predict_proba(part_texts), dtype=np.float32)
            tmp = store / f".chunk-{name}.tmp.npz"
            np.savez(tmp, keys=chunk_keys, probs=proba)
            os.replace(tmp, store / f"chunk-{name}.npz")
        known.update(zip((k for k, _ in part), proba, strict=True))
    if not texts:
        return np.zeros((0, 3), dtype=np.float32), (np.zeros((0, 0), dtype=np.float32) if features else None)
    proba_all = np.stack([known[k.tobytes()] for k in keys]).astype(np.float32)
    if not features:
        return proba_all, None
    return proba_all, np.stack([vectors[k.tobytes()] for k in keys]).astype(np.float32)


def standardise(feats: np.ndarray) -> np.ndarray:
    """Each dimension centred and scaled to unit variance over the training rows. Pooled encoder
    vectors share a large common direction and a few outsized dimensions: raw, a cosine to them is
    high for any review and the hint term would teach little beyond that average."""
    if not len(feats):
        return feats
    feats = feats.astype(np.float32)
    return (feats - feats.mean(axis=0)) / (feats.std(axis=0) + 1e-6)


def check_evidence(train: pd.DataFrame, names: Sequence[str]) -> None:
    """Before the teacher's pass: every rating named must be known on some labelled training row."""
    labelled = train["label"].to_numpy() >= 0
    for name in names:
        column = f"aux_{name}"
        if column not in train or not train.loc[labelled, column].notna().any():
            raise ConfigError(f"distill.evidence: no labelled training review carries a '{name}' rating")


def apply_evidence(
    proba: np.ndarray, train: pd.DataFrame, names: Sequence[str]
) -> tuple[np.ndarray, dict[str, Any]]:
    """The teacher's probabilities sharpened by the reviewers' own auxiliary ratings.

    Where a row has rating ``r`` for ``name``, p(class | text, r) is taken proportional to
    p(class | text) x P(class | r) / P(class), the two factors counted (add-one) on the labelled
    training rows that carry the rating. On webmd_val the effectiveness stars lift the MiniLM
    teacher's own macro-F1 from 0.630 to 0.728: the 25K effectiveness-only reviews get targets much
    closer to what their writers felt, while the student still reads text alone. Ratings seen on no
    labelled row leave a row as the teacher left it."""
    proba = proba.astype(np.float64)
    gold = train["label"].to_numpy()
    record: dict[str, Any] = {}
    check_evidence(train, names)
    for name in names:
        values = train[f"aux_{name}"].to_numpy(dtype=float)
        known = ~np.isnan(values)
        rated = np.rint(np.where(known, values, -1)).astype(int)
        labelled = known & (gold >= 0)
        levels = [int(v) for v in np.unique(rated[labelled])]
        # P(class | rating) and P(class) over the labelled rows that carry it, add-one smoothed
        k = proba.shape[1]
        counts = np.stack([np.bincount(gold[labelled & (rated == v)], minlength=k) + 1.0 for v in levels])
        ratio = (counts / counts.sum(axis=1, keepdims=True)) / (counts.sum(axis=0) / counts.sum())
        applied = 0
        for i, level in enumerate(levels):
            hit = rated == level
            proba[hit] *= ratio[i]
            applied += int(hit.sum())
        record[name] = {
            "labelled_rows": int(labelled.sum()),
            "rows_sharpened": applied,
            "class_given_rating": {
                str(v): np.round(row / row.sum(), 4).tolist() for v, row in zip(levels, counts, strict=True)
            },
        }
    proba /= proba.sum(axis=1, keepdims=True)
    return proba.astype(np.float32), record


def augment_reviews(texts: Sequence[str], copies: int, word_drop: float, seed: int) -> list[str]:
    """Perturbed copies of reviews for the teacher to label (Tang et al. 2019, "Distilling
    task-specific knowledge from BERT into simple neural networks"): half read only a contiguous
    30-100% of the words, and each word is dropped with probability ``word_drop``. The teacher labels
    every copy afresh, so the student learns how the answer moves when part of a review is missing,
    signal that 17K gold labels alone do not carry."""
    rng = np.random.default_rng(seed)
    out: list[str] = []
    for _ in range(copies):
        for text in texts:
            words = text.split()
            if len(words) > 8 and rng.random() < 0.5:
                n = max(4, int(len(words) * rng.uniform(0.3, 1.0)))
                start = int(rng.integers(0, len(words) - n + 1))
                words = words[start : start + n]
            keep = rng.random(len(words)) >= word_drop
            if words and not keep.any():
                keep[int(rng.integers(0, len(words)))] = True
            out.append(" ".join(w for w, k in zip(words, keep, strict=True) if k))
    return out


def teacher_prepare(teacher: Predictor, cfg: DistillConfig, seed: int, cache: Path | None = None) -> Any:
    """The training hook: perturbed copies of the labelled reviews (``distill.augment``) join the
    training split, then the teacher's probabilities become its columns (cached in ``cache``, else in
    the run's work folder, which goes when the run is saved)."""

    def prepare(splits: Splits, work: Path) -> tuple[Splits, dict[str, Any]]:
        train = splits.train
        check_evidence(train, cfg.evidence)
        augmented = 0
        if cfg.augment:
            gold = train[train["label"] >= 0]
            copies = pd.concat([gold] * cfg.augment, ignore_index=True)  # copy by copy, as augmented
            copies["text"] = augment_reviews(gold["text"].tolist(), cfg.augment, cfg.augment_word_drop, seed)
            copies["label"] = -1
            copies = copies[copies["text"].str.len() > 0]
            copies = copies[~copies["text"].isin(set(train["text"]))].drop_duplicates("text")
            augmented = len(copies)
            train = pd.concat([train, copies], ignore_index=True)
        texts = train["text"].tolist()
        hints = cfg.hint_weight > 0
        proba, feats = teacher_outputs(
            teacher, texts, cache or work / "teacher", cfg.teacher_batch_rows, features=hints
        )
        train = train.copy()
        agreement = _agreement(proba, train["label"].to_numpy())
        evidence: dict[str, Any] = {}
        if cfg.evidence:
            proba, evidence = apply_evidence(proba, train, cfg.evidence)
        for j, col in enumerate(SOFT_COLUMNS):
            train[col] = proba[:, j]
        if feats is not None:
            train[HINT_COLUMN] = list(standardise(feats))  # one vector per row, read by neural.fit
        labelled = int((train["label"] >= 0).sum())
        record = {
            "teacher": {
                "run": str(teacher.run_dir),
                "run_id": run_id(teacher.run_dir),
                "kind": teacher.model_name,
                "temperature": teacher.temperature,
            },
            "distill_sources": {
                "labelled_reviews": labelled,
                "unlabelled_reviews": len(train) - labelled - augmented,
                "augmented_reviews": augmented,
            },
            "teacher_agreement_with_gold": agreement,
        }
        if evidence:
            record["evidence"] = evidence
            record["target_agreement_with_gold"] = _agreement(proba, train["label"].to_numpy())
        if feats is not None:
            record["hints"] = {"weight": cfg.hint_weight, "teacher_dim": int(feats.shape[1])}
        return dataclasses.replace(splits, train=train), record

    return prepare


def _agreement(proba: np.ndarray, gold: np.ndarray) -> float | None:
    has = gold >= 0
    return float((proba[has].argmax(axis=1) == gold[has]).mean()) if has.any() else None


def check_student(student: str) -> str:
    """A student is any model the neural engine trains: a word model (TextCNN, BiLSTM), or a small
    encoder such as MiniLM that keeps its serving cost while learning a larger encoder's answers."""
    from medsent.models.registry import MODELS, get_model_spec

    spec = get_model_spec(student)
    if spec.family not in ("neural", "transformer"):
        known = ", ".join(n for n, s in MODELS.items() if s.family in ("neural", "transformer"))
        raise ConfigError(f"the student must be trained by the neural engine ({known}); '{student}' is not")
    return spec.name


def distill(
    teacher_run: Path,
    student: str,
    data: Path,
    val_data: Path,
    out: Path,
    *,
    unlabeled: Sequence[Path] = (),
    test_data: Path | None = None,
    preset: str | None = None,
    preset_config: str | None = None,
    config: Path | None = None,
    overrides: Any = None,
    layers: Sequence[dict[str, Any]] = (),
    overwrite: bool = False,
    teacher_cache: Path | None = None,
) -> Any:
    """Train ``student`` on ``teacher_run``'s probabilities; returns the TrainResult."""
    from medsent.api import train_config
    from medsent.data.presets import data_layer
    from medsent.ensemble import rating_signature
    from medsent.training import AuxSource, train_run

    name = check_student(student)
    if teacher_cache is not None and teacher_cache.exists() and not teacher_cache.is_dir():
        raise ConfigError(f"--teacher-cache {teacher_cache} is a file; give a folder")
    teacher = Predictor(teacher_run)
    base: dict[str, Any] = {"distill": {"teacher": str(teacher_run.resolve())}}
    if preset is not None:
        base["data"] = data_layer(preset)
    cfg = train_config(
        name, preset_config=preset_config, config=config, overrides=overrides, layers=[base, *layers]
    )
    if cfg.distill.hint_weight > 0 and not teacher.has_features:
        raise ConfigError(
            f"distill.hint_weight needs a single neural teacher run with review vectors; "
            f"{teacher_run} is a {teacher.model_name} run"
        )
    unknown = [n for n in cfg.distill.evidence if n not in cfg.data.aux_cols]
    if unknown:
        raise ConfigError(
            f"distill.evidence: unknown rating '{unknown[0]}'; known: {', '.join(cfg.data.aux_cols)}"
        )
    if rating_signature(teacher.config) != rating_signature(cfg):
        raise ConfigError(
            f"the teacher's label map {rating_signature(teacher.config)} differs from the student's "
            f"{rating_signature(cfg)}; give the student the teacher's --preset"
        )
    sources = [AuxSource(Path(u), {}, unlabeled=True) for u in unlabeled]
    return train_run(
        cfg,
        data,
        out,
        val_path=val_data,
        test_path=test_data,
        overwrite=overwrite,
        aux=sources,
        prepare=teacher_prepare(teacher, cfg.distill, cfg.seed, teacher_cache),
        resume_extra={
            "distill": {
                "teacher": str(teacher_run.resolve()),
                "cache": str(teacher_cache.resolve()) if teacher_cache else None,
            }
        },
    )
