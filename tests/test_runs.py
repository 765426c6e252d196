from pathlib import Path

import pytest

from medsent.errors import RunError
from medsent.runs import RunWriter, check_run_folder, read_json


def test_commit_is_atomic_and_abort_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "run"
    writer = RunWriter(out)
    (writer.path / "metrics.json").write_text("{}")
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


def test_tampered_or_foreign_run_folders_are_refused(svm_run: Path, tmp_path: Path) -> None:
    assert check_run_folder(svm_run)["model"] == "svm"
    with pytest.raises(RunError, match="not found"):
        check_run_folder(tmp_path / "missing")
    bad = tmp_path / "bad"
    RunWriter(bad).commit({"model": "svm"})
    (bad / "model.pkl").write_bytes(b"\x80\x04")
    with pytest.raises(RunError, match="unexpected file type"):
        check_run_folder(bad)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "run.json").write_text("{oops")
    with pytest.raises(RunError, match="not valid JSON"):
        check_run_folder(broken)
