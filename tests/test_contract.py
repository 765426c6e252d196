"""Every registered model: fit, probabilities that sum to 1, save -> load -> the same predictions."""

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medsent.core.config import build_config
from medsent.data.presets import preset_layer
from medsent.inference.export import export_run
from medsent.inference.predict import Predictor
from medsent.models.registry import MODELS, RUN_KINDS
from medsent.training.train import train_run

# Small widths and two epochs: the contract is about behaviour, not accuracy.
TINY = {
    "textcnn": {"embed_dim": 24, "num_filters": 8},
    "bilstm": {"embed_dim": 16, "hidden_dim": 12, "fc_dim": 8},
    "trainer": {"max_epochs": 2, "progress_bar": False, "num_threads": 1},
    # Only the head and the top layer train: the contract, not MiniLM's accuracy, is under test.
    "transformer": {"freeze_layers": 5, "freeze_embeddings": True, "max_length": 64},
}
PROBES = ["No side effects and my pain is gone.", "Made me dizzy, stopped after a week.", "It is okay."]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_registered_model_contract(
    name: str, train_csv: Path, val_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trainer: dict[str, object] = {}
    if name == "transformer":  # one epoch, all cores: the encoder is the slow part of the suite
        trainer = {
            "max_epochs": 1,
            "batch_size": 32,
            "num_threads": os.cpu_count() or 1,
            "limit_train_batches": 4,
        }
    cfg = build_config(
        {"model": name, "data": preset_layer("webmd"), "split": {"test_frac": 0}, **TINY},
        {"trainer": trainer},
    )
    result = train_run(cfg, train_csv, tmp_path / "run", val_path=val_csv)
    predictor = Predictor(result.run_dir)
    proba = predictor.predict_proba(PROBES)
    assert proba.shape == (3, 3)
    assert np.allclose(proba.sum(axis=1), 1.0) and (proba >= 0).all()
    reloaded = Predictor(result.run_dir).predict_proba(PROBES)
    assert np.allclose(proba, reloaded, atol=1e-6)
    assert 0.0 <= result.metrics["val"]["macro_f1"] <= 1.0
    if MODELS[name].family == "sklearn":
        return
    # Neural runs export to ONNX; onnxruntime then serves them with the same probabilities.
    meta = export_run(result.run_dir)
    # float16 lookup tables (a TextCNN's default graph) round each entry: 1e-3, else 1e-4
    tolerance = 1e-3 if meta.get("tables") == "fp16" else 1e-4
    texts = pd.read_csv(val_csv)["review"].fillna("").tolist()[:100] + PROBES
    texts = [t for t in texts if t.strip()]
    assert Predictor(result.run_dir).backend.startswith("onnxruntime")  # routed by export's timing
    monkeypatch.setenv("MEDSENT_ONNX_MAX_ROWS", str(1 << 30))  # every batch through onnxruntime
    exported = Predictor(result.run_dir)
    assert exported.backend == "onnxruntime"
    monkeypatch.setenv("MEDSENT_ONNX", "0")
    native = Predictor(result.run_dir)
    assert native.backend == "native"
    assert np.abs(exported.predict_proba(texts) - native.predict_proba(texts)).max() < tolerance


def _ensemble(members: dict[str, Path], out: Path) -> None:
    from medsent.training.combine import build_ensemble

    build_ensemble([members["svm"], members["textcnn"]], out)


def _cascade(members: dict[str, Path], out: Path) -> None:
    from medsent.training.combine import build_cascade

    build_cascade(members["textcnn"], members["svm"], members["val"], out)


# Every run kind that is made from other runs, with how the contract makes one.
MADE_FROM_RUNS = {"ensemble": _ensemble, "cascade": _cascade}


@pytest.mark.parametrize("kind", sorted(k for k, s in RUN_KINDS.items() if not s.trainable))
def test_run_kinds_made_from_runs_load_through_their_registry_loader(
    kind: str, svm_run: Path, textcnn_run: Path, val_csv: Path, tmp_path: Path
) -> None:
    assert kind in MADE_FROM_RUNS, f"add a builder for run kind '{kind}' to the contract suite"
    out = tmp_path / kind
    MADE_FROM_RUNS[kind]({"svm": svm_run, "textcnn": textcnn_run, "val": val_csv}, out)
    predictor = Predictor(out)
    assert predictor.kind.name == kind and predictor.model_name == kind
    proba = predictor.predict_proba(PROBES)
    assert proba.shape == (3, 3) and np.allclose(proba.sum(axis=1), 1.0)
    assert np.allclose(Predictor(out).predict_proba(PROBES), proba, atol=1e-9)


def test_an_unknown_run_kind_is_a_one_line_error(svm_run: Path, tmp_path: Path) -> None:
    import json
    import shutil

    from medsent.core.errors import RunError

    run = tmp_path / "odd"
    shutil.copytree(svm_run, run)
    meta = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**meta, "model": "gpt9"}))
    with pytest.raises(
        RunError, match="run kind 'gpt9' is unknown to this version; known: bilstm, cascade, ensemble"
    ):
        Predictor(run)


def test_every_run_kind_has_a_loader_and_every_trainable_kind_a_fitter() -> None:
    """The registry says what a kind is; the inference and training floors each key their part on
    its family. A new kind that misses either fails here, not when a user first loads or trains one."""
    from medsent.core.errors import ConfigError
    from medsent.inference.loaders import LOADERS
    from medsent.training.fitters import FITTERS, fitter_for

    for spec in RUN_KINDS.values():
        assert spec.family in LOADERS, f"run kind '{spec.name}' has no loader"
        if spec.trainable:
            assert spec.family in FITTERS, f"model '{spec.name}' has no fitter"
            assert fitter_for(spec).resumable == (spec.family != "sklearn")
        else:
            with pytest.raises(ConfigError, match="not trained by"):
                fitter_for(spec)
