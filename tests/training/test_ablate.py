"""`medsent ablate`: variants, statistics, and a tiny real run that resumes."""

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import f1_score

from medsent.core.config import build_config, model_preset_layer
from medsent.core.errors import ConfigError
from medsent.evaluation.metrics import macro_f1_many
from medsent.training.ablate import paired_bootstrap, plan_variants


def test_variants_switch_one_technique_off() -> None:
    cfg = build_config(model_preset_layer("bilstm", "v2"), {"model": "bilstm"})
    plan = plan_variants(cfg, ["layer_norm", "label_smoothing", "dropout"])
    assert plan["full"] == {}
    assert plan["no_layer_norm"] == {"bilstm": {"layer_norm": False}}
    assert plan["no_label_smoothing"] == {"loss": {"name": "weighted_ce"}}  # class weights stay
    assert set(plan["no_dropout"]["bilstm"].values()) == {0.0}
    with pytest.raises(ConfigError, match="not used by this bilstm preset"):
        plan_variants(cfg, ["batch_norm"])
    with pytest.raises(ConfigError, match="unknown technique"):
        plan_variants(cfg, ["magic"])
    cnn = build_config(model_preset_layer("textcnn", "v2"), {"model": "textcnn"})
    assert "no_batch_norm" in plan_variants(cnn, None) and "no_focal" in plan_variants(cnn, None)


def test_fast_macro_f1_matches_sklearn_and_bootstrap_is_paired() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 400)
    pred = np.where(rng.random(400) < 0.7, y, rng.integers(0, 3, 400))
    assert macro_f1_many(y, pred)[0] == pytest.approx(f1_score(y, pred, average="macro"))
    d, lo, hi = paired_bootstrap(y, [pred], [pred], "macro_f1", n_boot=200)
    assert d == lo == hi == 0.0  # identical predictions: no difference under any resample
    better = np.where(rng.random(400) < 0.5, y, pred)
    d, lo, hi = paired_bootstrap(y, [pred], [better], "macro_f1", n_boot=200)
    assert 0 < lo <= d <= hi


def test_tiny_ablation_end_to_end_and_resume(cli, train_csv: Path, val_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "abl"
    args = [
        "ablate", "--model", "textcnn", "--data", train_csv, "--val-data", val_csv, "--out", out,
        "--techniques", "batch_norm,grad_clip", "--seeds", "2", "--max-epochs", "1",
        "--set", "textcnn.embed_dim=16", "--set", "textcnn.num_filters=4", "--set", "trainer.num_threads=1",
    ]  # fmt: skip
    res = cli(*args)
    assert res.code == 0 and "no_batch_norm" in res.out and "Δ macro-F1" in res.out
    rows = {r["variant"]: r for r in json.loads((out / "ablation.json").read_text())["rows"]}
    assert set(rows) == {"full", "no_batch_norm", "no_grad_clip"}
    assert (
        rows["no_grad_clip"]["d_macro_f1_lo"]
        <= rows["no_grad_clip"]["d_macro_f1"]
        <= rows["no_grad_clip"]["d_macro_f1_hi"]
    )
    assert rows["full"]["seeds"] == 2 and not list(out.rglob("*.safetensors"))  # runs removed by default
    cfg = json.loads((out / "variants/no_batch_norm/seed13/result.json").read_text())
    assert 0 <= cfg["macro_f1"] <= 1
    done = out / "variants/full/seed14/result.json"
    stamp = done.stat().st_mtime_ns
    (out / "variants/no_grad_clip/seed14/result.json").unlink()  # as if killed during the last run
    assert cli(*args).code == 0
    assert done.stat().st_mtime_ns == stamp and (out / "variants/no_grad_clip/seed14/result.json").exists()
    assert (out / "report.html").exists() and (out / "ablation.png").exists()
    assert cli(
        "ablate", "--model", "svm", "--data", train_csv, "--val-data", val_csv, "--out", out
    ).one_line_error("SVM has none")


def test_list_shows_what_the_preset_can_switch_off(cli, tmp_path: Path) -> None:
    res = cli(
        "ablate",
        "--model",
        "transformer",
        "--data",
        "x.csv",
        "--val-data",
        "y.csv",
        "--out",
        tmp_path,
        "--list",
    )
    assert (
        res.code == 0
        and "freezing" in res.out
        and "discriminative_lr" in res.out
        and "layer_norm" not in res.out
    )


def test_levers_switched_on_with_aux_data_and_crossfitted_offsets(
    cli, train_csv: Path, val_csv: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    import json

    import pandas as pd

    aux = tmp_path / "eff.csv"
    frame = pd.read_csv(train_csv).head(80)
    pd.DataFrame({"review": frame["review"] + " (again)", "effectiveness": frame["effectiveness"]}).to_csv(
        aux, index=False
    )
    out = tmp_path / "levers"
    res = cli(
        "ablate", "--model", "textcnn", "--data", train_csv, "--val-data", val_csv, "--preset", "webmd",
        "--out", out, "--techniques", "none", "--variant", "ordinal:targets.main=ordinal",
        "--variant", "aux:targets.aux.effectiveness=0.5", "--aux-data", aux, "--offsets", "--seeds", "1",
        "--max-epochs", "1", "--set", "textcnn.embed_dim=16", "--set", "textcnn.num_filters=4",
        "--set", "trainer.num_threads=1",
    )  # fmt: skip
    assert res.code == 0, res.err
    rows = {r["variant"]: r for r in json.loads((out / "ablation.json").read_text())["rows"]}
    assert set(rows) == {"full", "ordinal", "aux", "full+offsets", "ordinal+offsets", "aux+offsets"}
    assert "d_macro_f1_lo" in rows["aux+offsets"] and "no_dropout" not in rows
    assert cli("ablate", "--model", "textcnn", "--data", train_csv, "--val-data", val_csv, "--out", tmp_path / "x",
               "--variant", "no_thing:seed=1").one_line_error("reserved")  # fmt: skip
