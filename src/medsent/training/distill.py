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

from medsent.core.config import DistillConfig
from medsent.core.errors import ConfigError
from medsent.data.dataset import Splits
from medsent.inference.predict import Predictor
from medsent.training.fitters import SOFT_COLUMNS

log = logging.getLogger(__name__)


def _text_keys(texts: Sequence[str]) -> np.ndarray:
    """16-byte digests that identify each review text in the cache, whatever its row order."""
    return np.array(
        [np.frombuffer(hashlib.blake2b(t.encode(), digest_size=16).digest(), dtype=np.uint8) for t in texts],
        dtype=np.uint8,
    ).reshape(len(texts), 16)


def teacher_probabilities(
    teacher: Predictor, texts: Sequence[str], folder: Path, batch_rows: int
) -> np.ndarray:
    """The teacher's calibrated probabilities for ``texts``, computed in chunks of ``batch_rows``.

    Each finished chunk is saved under ``folder/<teacher run id>/`` with the digests of its texts, so
    the cache is keyed by review, not by row order: a rerun after a kill computes only the missing
    reviews, and students with other seeds, temperatures or extra unlabelled files that share
    ``folder`` (``--teacher-cache``) reuse every review the teacher has already seen."""
    from tqdm.auto import tqdm

    store = folder / teacher.run.run_id()
    store.mkdir(parents=True, exist_ok=True)
    keys = _text_keys(texts)
    known: dict[bytes, np.ndarray] = {}
    for path in sorted(store.glob("chunk-*.npz")):
        try:
            with np.load(path, allow_pickle=False) as saved:
                known.update(zip((k.tobytes() for k in saved["keys"]), saved["probs"], strict=True))
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):  # cut short by a kill
            log.warning("teacher cache: %s was cut short; its reviews are computed again", path.name)
            path.unlink(missing_ok=True)
    missing: dict[bytes, str] = {}
    for key, text in zip(keys, texts, strict=True):
        if key.tobytes() not in known:
            missing.setdefault(key.tobytes(), text)
    todo = list(missing.items())
    log.info("teacher outputs: %d reviews to compute, the rest cached", len(todo))
    starts = range(0, len(todo), batch_rows)
    for start in tqdm(starts, desc="teacher outputs", unit="chunk", disable=None):
        part = todo[start : start + batch_rows]
        chunk_keys = np.frombuffer(b"".join(k for k, _ in part), dtype=np.uint8).reshape(len(part), 16)
        name = hashlib.sha256(chunk_keys.tobytes()).hexdigest()[:24]
        proba = np.asarray(teacher.predict_proba([t for _, t in part]), dtype=np.float32)
        tmp = store / f".chunk-{name}.tmp.npz"
        np.savez(tmp, keys=chunk_keys, probs=proba)
        os.replace(tmp, store / f"chunk-{name}.npz")
        known.update(zip((k for k, _ in part), proba, strict=True))
    if not texts:
        return np.zeros((0, 3), dtype=np.float32)
    return np.stack([known[k.tobytes()] for k in keys]).astype(np.float32)


def teacher_prepare(teacher: Predictor, cfg: DistillConfig, cache: Path | None = None) -> Any:
    """The training hook: the teacher's probabilities become columns of the training split (cached
    in ``cache``, else in the run's work folder, which goes when the run is saved)."""

    def prepare(splits: Splits, work: Path) -> tuple[Splits, dict[str, Any]]:
        train = splits.train.copy()
        proba = teacher_probabilities(
            teacher, train["text"].tolist(), cache or work / "teacher", cfg.teacher_batch_rows
        )
        for j, col in enumerate(SOFT_COLUMNS):
            train[col] = proba[:, j]
        labelled = int((train["label"] >= 0).sum())
        record = {
            "teacher": {
                "run": str(teacher.run_dir),
                "run_id": teacher.run.run_id(),
                "kind": teacher.model_name,
                "temperature": teacher.temperature,
            },
            "distill_sources": {"labelled_reviews": labelled, "unlabelled_reviews": len(train) - labelled},
            "teacher_agreement_with_gold": _agreement(proba, train["label"].to_numpy()),
        }
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
    from medsent.core.runs import rating_signature
    from medsent.data.presets import data_layer
    from medsent.training.train import AuxSource, train_config, train_run

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
        prepare=teacher_prepare(teacher, cfg.distill, teacher_cache),
        resume_extra={
            "distill": {
                "teacher": str(teacher_run.resolve()),
                "cache": str(teacher_cache.resolve()) if teacher_cache else None,
            }
        },
    )
