"""Run folders: atomic writes, the checks before anything loads, and RunFolder as their one reader."""

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from medsent.core.errors import RunError
from medsent.core.labels import LABELS
from medsent.core.runs import (
    DECISION_FILE,
    METRICS_FILE,
    RunFolder,
    RunWriter,
    atomic_folder,
    check_run_folder,
    check_same_task,
    read_json,
)

SRC = Path(__file__).resolve().parents[2] / "src" / "medsent"


def test_commit_is_atomic_and_abort_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "run"
    writer = RunWriter(out)
    writer.write_metrics({})
    assert not out.exists()
    writer.commit({"model": "svm"})
    assert read_json(out / "run.json")["model"] == "svm"
    failed = RunWriter(tmp_path / "other")
    failed.abort()
    assert list(tmp_path.iterdir()) == [out]


def test_existing_run_is_kept_unless_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "run"
    RunWriter(out).commit({"model": "svm", "n": 1})
    with pytest.raises(RunError, match="already exists"):
        RunWriter(out)
    writer = RunWriter(out, overwrite=True)
    assert read_json(out / "run.json")["n"] == 1  # old run intact until the new one commits
    writer.commit({"model": "svm", "n": 2})
    assert read_json(out / "run.json")["n"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_atomic_folder_replaces_only_a_complete_folder(tmp_path: Path) -> None:
    target = tmp_path / "export"
    with atomic_folder(target) as tmp:
        (tmp / "a.txt").write_text("1")
        assert not target.exists()
    assert (target / "a.txt").read_text() == "1"
    with pytest.raises(ValueError), atomic_folder(target) as tmp:
        (tmp / "a.txt").write_text("2")
        raise ValueError("cut short")
    assert (target / "a.txt").read_text() == "1"  # the old folder stands
    # A writer killed earlier left a partial folder (a pid that no longer runs): the next one clears it.
    stale = tmp_path / f".export.partial-{2**22 + 7}-x"
    stale.mkdir()
    with atomic_folder(target) as tmp:
        (tmp / "b.txt").write_text("3")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]
    assert [p.name for p in target.iterdir()] == ["b.txt"]


def test_tampered_or_foreign_run_folders_are_refused(svm_run: Path, tmp_path: Path) -> None:
    assert check_run_folder(svm_run)["model"] == "svm"
    with pytest.raises(RunError, match="not found"):
        RunFolder(tmp_path / "missing")
    bad = tmp_path / "bad"
    RunWriter(bad).commit({"model": "svm"})
    (bad / "model.pkl").write_bytes(b"\x80\x04")
    with pytest.raises(RunError, match="unexpected file type"):
        RunFolder(bad)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "run.json").write_text("{oops")
    with pytest.raises(RunError, match="not valid JSON"):
        RunFolder(broken)


def test_run_folder_reads_every_part_of_a_run(svm_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(svm_run, run)
    folder = RunFolder(run)
    assert folder.kind == "svm" and folder.config.model == "svm"
    assert folder.label_order is None and folder.temperature is None and folder.offsets(None) is None
    assert folder.metrics["val"]["macro_f1"] > 0 and folder.manifest["files"]["train"]["sha256"]
    assert folder.task == folder.config.data.rating.model_dump() and len(folder.run_id()) == 16

    # A run whose model wrote its classes in another order: mapped onto medsent's order.
    (run / "labels.json").write_text(json.dumps({"labels": ["Positive", "Negative", "Neutral"]}))
    assert RunFolder(run).label_order == [1, 2, 0]
    (run / "labels.json").write_text(json.dumps({"labels": ["Bad", "Good", "Meh"]}))
    with pytest.raises(RunError, match="not a permutation"):
        _ = RunFolder(run).label_order
    shutil.copyfile(svm_run / "labels.json", run / "labels.json")

    folder.write_calibration({"temperature": 1.5})
    offsets = {"offsets": dict(zip(LABELS, [0.0, 0.3, -0.1], strict=True)), "fitted_on_temperature": 1.5}
    folder.write_decision(offsets)
    assert folder.temperature == 1.5 and np.allclose(folder.offsets(1.5), [0.0, 0.3, -0.1])
    with pytest.raises(RunError, match="refit it"):
        folder.offsets(2.0)  # fitted on other probabilities
    folder.write_decision(None)
    assert not (run / DECISION_FILE).exists() and folder.offsets(1.5) is None
    folder.write_calibration({"temperature": -1})
    with pytest.raises(RunError, match="no valid temperature"):
        _ = folder.temperature


def test_runs_of_different_tasks_are_not_mixed(svm_run: Path) -> None:
    cfg = RunFolder(svm_run).config
    other = cfg.model_copy(
        update={
            "data": cfg.data.model_copy(
                update={"rating": cfg.data.rating.model_copy(update={"negative_max": 1})}
            )
        }
    )
    check_same_task([cfg, cfg], ["a", "b"])
    with pytest.raises(RunError, match="runs 'a' and 'b' were trained on different label maps"):
        check_same_task([cfg, other], ["a", "b"])


def test_run_file_names_are_spelled_in_one_module() -> None:
    """Every reader goes through RunFolder: no other module names the files every run holds."""
    names = ["run.json", "config.json", "labels.json", METRICS_FILE, "manifest.json", "calibration.json",
             DECISION_FILE, "history.csv"]  # fmt: skip
    spelled: dict[str, list[str]] = {}
    for path in SRC.rglob("*.py"):
        code = path.read_text(encoding="utf-8")
        for name in names:
            if re.search(rf"[\"']{re.escape(name)}[\"']", code):
                spelled.setdefault(name, []).append(os.path.relpath(path, SRC))
    # config.json is also the Hugging Face encoders' own file name, spelled where encoders are read.
    hf = {"neural/encoders.py", "neural/hf.py"}
    spelled["config.json"] = [p for p in spelled.get("config.json", []) if p not in hf]
    assert {n: sorted(set(p)) for n, p in spelled.items() if p} == {n: ["core/runs.py"] for n in names}


def test_runs_saved_with_retired_settings_load_when_they_were_off(svm_run: Path, tmp_path: Path) -> None:
    """A run written by a version that still had a setting loads when it recorded the setting's
    'off' value; one that used it is refused by name rather than served differently."""
    from medsent.inference.predict import Predictor

    old = tmp_path / "old"
    shutil.copytree(svm_run, old)
    cfg = json.loads((old / "config.json").read_text())
    cfg["textcnn"]["pooling"] = "max"
    cfg["trainer"].update(early_stop_at="any_epoch", ema_decay=None)
    cfg["distill"].update(augment=0, augment_word_drop=0.1, objective="kl", hint_weight=0.0, evidence=[])
    cfg["embeddings"] = {"init": None, "freeze": False}
    (old / "config.json").write_text(json.dumps(cfg))
    probes = ["No side effects", "Awful headaches"]
    assert np.allclose(Predictor(old).predict_proba(probes), Predictor(svm_run).predict_proba(probes))
    cfg["textcnn"]["pooling"] = "max_mean"
    cfg["distill"]["objective"] = "mse"
    (old / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(RunError, match=r"trained with textcnn.pooling=max_mean, distill.objective=mse"):
        Predictor(old)
