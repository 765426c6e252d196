"""The Python API: the same records, metrics and runs as the CLI, and the README's example runs."""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import medsent
from medsent.core.errors import ConfigError, RunError

README = Path(__file__).resolve().parents[2] / "README.md"


def test_public_names_are_explicit() -> None:
    assert set(medsent.__all__) >= {
        "load",
        "train",
        "evaluate",
        "Model",
        "resume",
        "demo_data",
        "__version__",
    }
    assert all(hasattr(medsent, name) for name in medsent.__all__)


def test_load_predict_gives_the_cli_records(cli, svm_run: Path) -> None:  # type: ignore[no-untyped-def]
    texts = ["Worked great, no side effects at all.", "Made me dizzy and sick, I stopped it."]
    model = medsent.load(svm_run)
    res = cli("predict", svm_run, "--text", texts[0], "--text", texts[1])
    expected = [json.loads(line) for line in res.out.strip().splitlines()]
    got = model.predict(texts)
    assert [r["prediction"] for r in got] == [r["prediction"] for r in expected]
    for ours, theirs in zip(got, expected, strict=True):
        assert ours["tier"] == theirs["tier"] and ours["confidence"] == pytest.approx(theirs["confidence"])
        assert ours["probabilities"] == pytest.approx(theirs["probabilities"])
    proba = model.predict_proba(texts)
    assert proba.shape == (2, 3) and np.allclose(proba.sum(axis=1), 1.0)
    single = model.predict(texts[0])  # one string is one text, not characters
    assert len(single) == 1 and single[0]["probabilities"] == pytest.approx(got[0]["probabilities"])
    assert model.labels == ["Negative", "Neutral", "Positive"] and model.kind == "svm"
    assert "val" in model.metrics and "svm" in repr(model)


def test_blank_texts_get_no_label_as_in_batch_prediction(svm_run: Path) -> None:
    model = medsent.load(svm_run)
    records = model.predict(["fine, it works", "   ", None])  # type: ignore[list-item]
    assert records[0]["prediction"] in model.labels
    assert (
        records[1]
        == records[2]
        == {
            "prediction": None,
            "confidence": None,
            "probabilities": None,
            "tier": "manual",
        }
    )
    proba = model.predict_proba(["fine, it works", ""])
    assert np.isfinite(proba[0]).all() and np.isnan(proba[1]).all()


def test_control_characters_alone_are_blank_everywhere(svm_run: Path, tmp_path: Path) -> None:
    """A review of only control characters gets no label from the API and from file scoring, as the
    service refuses it (422): one definition of blank text."""
    model = medsent.load(svm_run)
    assert model.predict(["\x1f\x00 "])[0]["tier"] == "manual"
    from medsent.inference.batch import score_frame

    scored = score_frame(model._predictor, pd.DataFrame({"review": ["\x1f\x1c", "it works well"]}), "review")
    assert scored["label"].tolist()[0] == "" and scored["tier"].tolist()[0] == "manual"
    assert scored["label"].tolist()[1] in model.labels


def test_train_and_evaluate_match_the_cli(cli, train_csv: Path, val_csv: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run = medsent.train(
        train_csv,
        "svm",
        val_data=val_csv,
        preset="webmd",
        out=tmp_path / "api",
        seed=5,
        overrides=["svm.C=0.2"],
    )
    assert run == tmp_path / "api" and (run / "run.json").is_file()
    saved = json.loads((run / "config.json").read_text())
    assert saved["svm"]["C"] == 0.2 and saved["seed"] == 5 and saved["data"]["preset"] == "webmd"
    res = cli(
        "train", "--model", "svm", "--data", train_csv, "--val-data", val_csv, "--preset", "webmd",
        "--out", tmp_path / "cli", "--seed", "5", "--set", "svm.C=0.2",
    )  # fmt: skip
    assert res.code == 0
    ours = medsent.evaluate(run, val_csv, out=tmp_path / "ev")
    theirs = json.loads(cli("evaluate", tmp_path / "cli", "--data", val_csv, "--json").out)
    assert (
        ours["macro_f1"] == pytest.approx(theirs["macro_f1"])
        and ours["confusion_matrix"] == theirs["confusion_matrix"]
    )
    assert ours["tiers"] == theirs["tiers"]
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["n"] == ours["n"]
    again = medsent.train(train_csv, "svm", val_data=val_csv, preset="webmd", out=run, overwrite=True,
                          overrides={"svm": {"C": 0.5}})  # fmt: skip
    assert json.loads((again / "config.json").read_text())["svm"]["C"] == 0.5


def test_api_errors_are_medsent_errors(tmp_path: Path, train_csv: Path) -> None:
    with pytest.raises(RunError, match="run folder not found"):
        medsent.load(tmp_path / "nope")
    with pytest.raises(ConfigError, match="unknown model 'gpt9'"):
        medsent.train(train_csv, "gpt9")
    with pytest.raises(ConfigError, match="built from other runs"):
        medsent.train(train_csv, "ensemble")


def test_readme_python_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's notebook example, executed as written (in an empty folder)."""
    text = README.read_text(encoding="utf-8")
    match = re.search(r"<!-- api-example -->\s*```python\n(.*?)```", text, re.S)
    assert match, "README has no ```python block after <!-- api-example -->"
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    exec(compile(match.group(1), "README.md", "exec"), namespace)
    model = namespace["model"]
    assert isinstance(model, medsent.Model) and (tmp_path / "runs").is_dir()
    assert isinstance(namespace["metrics"], dict) and 0 <= namespace["metrics"]["macro_f1"] <= 1  # type: ignore[index]
