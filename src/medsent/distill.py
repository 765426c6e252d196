"""`medsent distill`: a fast word model (the student) learns a slow run's answers (the teacher).

With 17K labelled reviews the word models are starved of data; a teacher can label as many reviews as
there is text. Its calibrated probabilities over the training and unlabelled reviews are computed once,
in streaming chunks, and cached in the run's work folder (a killed distillation resumes without
recomputing them); the student then trains on the teacher's softened probabilities (KL at
``distill.temperature``) plus cross-entropy on gold labels where they exist (``distill.alpha``), on
the same Lightning engine and presets as any run. The result is a normal run of the student's kind.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medsent.data.dataset import Splits
from medsent.errors import ConfigError
from medsent.predict import Predictor
from medsent.runs import run_id

log = logging.getLogger(__name__)

SOFT_COLUMNS = ("teacher_negative", "teacher_neutral", "teacher_positive")  # read by neural.fit


def teacher_probabilities(
    teacher: Predictor, texts: Sequence[str], folder: Path, batch_rows: int
) -> np.ndarray:
    """The teacher's calibrated probabilities for ``texts``, computed in chunks of ``batch_rows``
    and cached in ``folder`` (keyed by the teacher's content and the texts), so a rerun after a kill
    picks up at the first missing chunk."""
    from tqdm.auto import tqdm

    key = hashlib.sha256((run_id(teacher.run_dir) + "\x00" + "\x1e".join(texts)).encode()).hexdigest()
    folder.mkdir(parents=True, exist_ok=True)
    meta = folder / "meta.json"
    if not meta.exists() or json.loads(meta.read_text()).get("key") != key:
        for old in folder.glob("probs-*.npy"):
            old.unlink()
        meta.write_text(json.dumps({"key": key, "rows": len(texts), "batch_rows": batch_rows}))
    chunks = []
    starts = range(0, len(texts), batch_rows)
    for start in tqdm(starts, desc="teacher probabilities", unit="chunk", disable=None):
        path = folder / f"probs-{start // batch_rows:06d}.npy"
        if path.exists():
            chunks.append(np.load(path, allow_pickle=False))
            continue
        proba = np.asarray(teacher.predict_proba(list(texts[start : start + batch_rows])), dtype=np.float32)
        tmp = path.with_name(path.name + ".tmp.npy")
        np.save(tmp, proba, allow_pickle=False)
        os.replace(tmp, path)
        chunks.append(proba)
    return np.concatenate(chunks) if chunks else np.zeros((0, 3), dtype=np.float32)


def teacher_prepare(teacher: Predictor, batch_rows: int) -> Any:
    """The training hook: the teacher's probabilities as columns of the training split."""

    def prepare(splits: Splits, work: Path) -> tuple[Splits, dict[str, Any]]:
        texts = splits.train["text"].tolist()
        proba = teacher_probabilities(teacher, texts, work / "teacher", batch_rows)
        train = splits.train.copy()
        for j, col in enumerate(SOFT_COLUMNS):
            train[col] = proba[:, j]
        labelled = int((train["label"] >= 0).sum())
        record = {
            "teacher": {
                "run": str(teacher.run_dir),
                "run_id": run_id(teacher.run_dir),
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
    from medsent.models.registry import MODELS, get_model_spec

    spec = get_model_spec(student)
    if spec.family != "neural":
        words = ", ".join(n for n, s in MODELS.items() if s.family == "neural")
        raise ConfigError(f"the student must be a word model ({words}); '{student}' is not")
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
) -> Any:
    """Train ``student`` on ``teacher_run``'s probabilities; returns the TrainResult."""
    from medsent.api import train_config
    from medsent.data.presets import data_layer
    from medsent.ensemble import rating_signature
    from medsent.training import AuxSource, train_run

    name = check_student(student)
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
    batch_rows = cfg.distill.teacher_batch_rows
    return train_run(
        cfg,
        data,
        out,
        val_path=val_data,
        test_path=test_data,
        overwrite=overwrite,
        aux=sources,
        prepare=teacher_prepare(teacher, batch_rows),
        resume_extra={"distill": {"teacher": str(teacher_run.resolve()), "batch_rows": batch_rows}},
    )
