"""Training a run of any trainable kind: one fitter per family of ``models.registry``.

``train_run`` asks the fitter to check the config before any data is read, then to fill the run's
model folder. The neural fitter imports Lightning only when a neural run is trained.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from medsent.core.config import RunConfig
from medsent.core.errors import ConfigError
from medsent.core.runs import HISTORY_FILE
from medsent.models.registry import ModelSpec, negation_for

log = logging.getLogger(__name__)

# The teacher's probabilities that ``training.distill`` adds to the training split.
SOFT_COLUMNS = ("teacher_negative", "teacher_neutral", "teacher_positive")


class Fitter(Protocol):
    """How a family trains: checks before any data is read, and the fit that fills ``model_dir``."""

    resumable: bool  # keeps checkpoints in a work folder that `train --resume` continues from

    def check(self, cfg: RunConfig) -> None: ...

    def is_rank_zero(self) -> bool: ...

    def fit(
        self, cfg: RunConfig, splits: Any, model_dir: Path, work: Path, resume: bool, loggers: list[Any]
    ) -> dict[str, Any] | None: ...


class SvmFitter:
    """Registry fitter for ``svm``: one sklearn fit, nothing to resume."""

    resumable = False

    def check(self, cfg: RunConfig) -> None:
        return None

    def is_rank_zero(self) -> bool:
        return True

    def fit(
        self, cfg: RunConfig, splits: Any, model_dir: Path, work: Path, resume: bool, loggers: list[Any]
    ) -> dict[str, Any]:
        from medsent.models.svm import SvmClassifier

        model = SvmClassifier(cfg.svm, negation_for(cfg), cfg.text.lowercase, cfg.seed)
        train = splits.train[splits.train["label"] >= 0]  # auxiliary-only rows have nothing for it
        model.fit(train["text"].tolist(), train["label"].to_numpy())
        model.save(model_dir)
        return {}


class NeuralFitter:
    """Registry fitter for every neural kind: the one Lightning engine, resumable from checkpoints."""

    resumable = True

    def check(self, cfg: RunConfig) -> None:
        from medsent.training.fit import validate_neural_config

        validate_neural_config(cfg)

    def is_rank_zero(self) -> bool:
        from medsent.training.fit import is_global_zero

        return is_global_zero()

    def fit(
        self, cfg: RunConfig, splits: Any, model_dir: Path, work: Path, resume: bool, loggers: list[Any]
    ) -> dict[str, Any] | None:
        """Returns None on DDP ranks other than 0, which leave the run folder to rank 0."""
        import shutil

        from medsent.core.errors import DataError, TrainingError
        from medsent.training.callbacks import plot_history
        from medsent.training.fit import (
            FitData,
            FitRequest,
            fit_neural,
            is_global_zero,
            save_neural,
        )
        from medsent.training.module import NonFiniteLossError

        if splits.val is None or splits.val.empty:
            raise DataError(
                "neural models need validation data for early stopping: --val-data FILE or val_frac > 0"
            )
        from medsent.neural.targets import check_targets, target_matrix, target_specs

        train_targets = val_targets = None
        soft = None
        if cfg.distill.teacher is not None:
            if cfg.targets.active:
                raise ConfigError("distillation and extra targets (targets.*) cannot be combined")
            soft = splits.train[list(SOFT_COLUMNS)].to_numpy(dtype=np.float32)
        elif not cfg.targets.active and (splits.train["label"] < 0).any():
            # Rows with auxiliary ratings only feed auxiliary heads; without any they teach nothing.
            log.info(
                "no auxiliary targets: %d rows without a class label left out",
                int((splits.train["label"] < 0).sum()),
            )
            splits = dataclasses.replace(
                splits, train=splits.train[splits.train["label"] >= 0].reset_index(drop=True)
            )
        if cfg.targets.active:
            check_targets(cfg, splits.train, splits.val)
            specs = target_specs(cfg)
            train_targets, val_targets = target_matrix(splits.train, specs), target_matrix(splits.val, specs)
            useful = (splits.train["label"] >= 0).to_numpy() | (train_targets >= 0).any(axis=1)
            if not useful.all():  # e.g. effectiveness-only rows when no effectiveness head is on
                log.info("%d rows carry no label for any head; left out", int((~useful).sum()))
                splits = dataclasses.replace(splits, train=splits.train[useful].reset_index(drop=True))
                train_targets = train_targets[useful]
        try:
            fit = fit_neural(
                FitRequest(
                    cfg,
                    FitData(
                        splits.train["text"].tolist(), splits.train["label"].to_numpy(), train_targets, soft
                    ),
                    FitData(splits.val["text"].tolist(), splits.val["label"].to_numpy(), val_targets),
                    work,
                    resume=resume,
                    loggers=loggers,
                )
            )
        except NonFiniteLossError as exc:
            raise TrainingError(f"{exc}; last good checkpoint kept in {work / 'checkpoints'}") from None
        if not is_global_zero():
            return None
        save_neural(fit, model_dir)
        if (work / HISTORY_FILE).exists():
            shutil.copyfile(work / HISTORY_FILE, model_dir.parent / HISTORY_FILE)
        plot_history(fit.history, model_dir.parent)
        return fit.summary


FITTERS: dict[str, Callable[[], Fitter]] = {
    "sklearn": SvmFitter,
    "neural": NeuralFitter,
    "transformer": NeuralFitter,
}


def fitter_for(spec: ModelSpec) -> Fitter:
    """The fitter of a trainable kind; runs made from other runs are refused with how to make them."""
    factory = FITTERS.get(spec.family) if spec.trainable else None
    if factory is None:
        raise ConfigError(f"'{spec.name}' runs are not trained by `medsent train`")
    return factory()
