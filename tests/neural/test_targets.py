"""Extra targets: ordinal rating levels, auxiliary heads, partial labels and auxiliary data files."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from medsent.core.config import build_config
from medsent.data.presets import preset_layer
from medsent.inference.predict import Predictor
from medsent.models.textcnn import TextCNN
from medsent.neural.targets import (
    OrdinalHead,
    TaskLoss,
    TaskNet,
    group_matrix,
    soft_level_targets,
    target_matrix,
    target_specs,
)


def _cfg(**targets: object):  # type: ignore[no-untyped-def]
    return build_config({"data": preset_layer("webmd"), "targets": targets})


def test_soft_labels_spread_to_neighbours_and_groups_follow_the_rating_map() -> None:
    dist = soft_level_targets(torch.tensor([0, 2, 4]), 5, 0.2)
    assert torch.allclose(dist.sum(dim=1), torch.ones(3))
    assert dist[1].tolist() == pytest.approx([0, 0.1, 0.8, 0.1, 0])
    assert dist[0].tolist() == pytest.approx([0.8, 0.2, 0, 0, 0])  # an edge level keeps its spread
    g = group_matrix(_cfg())
    assert g.argmax(dim=1).tolist() == [0, 0, 1, 2, 2]  # 1-2 Negative, 3 Neutral, 4-5 Positive


def test_target_matrix_marks_missing_and_off_scale_values() -> None:
    cfg = _cfg(main="ordinal", aux={"effectiveness": 0.5})
    specs = target_specs(cfg)
    assert [s.name for s in specs] == ["rating", "effectiveness"]
    frame = pd.DataFrame({"rating": [1, 5, np.nan], "aux_effectiveness": [3, np.nan, 9]})
    assert target_matrix(frame, specs).tolist() == [[0, 2], [4, -1], [-1, -1]]


@pytest.mark.parametrize("kind", ["soft", "coral"])
def test_ordinal_net_gives_class_log_probabilities(kind: str) -> None:
    cfg = _cfg(main="ordinal", ordinal_loss=kind)
    base = TextCNN(50, cfg.textcnn.model_copy(update={"embed_dim": 8, "num_filters": 4}))
    net = TaskNet(base, target_specs(cfg), "ordinal", kind, group_matrix(cfg)).eval()
    ids = torch.randint(2, 50, (4, 12))
    logits = net(ids, torch.ones_like(ids, dtype=torch.bool))
    assert logits.shape == (4, 3) and torch.allclose(logits.exp().sum(dim=1), torch.ones(4), atol=1e-5)
    head = OrdinalHead(4, 5, kind)
    assert torch.allclose(head.log_proba(head(torch.randn(3, 4))).exp().sum(dim=1), torch.ones(3), atol=1e-4)


def test_rows_without_a_label_add_nothing_to_that_heads_loss() -> None:
    cfg = _cfg(aux={"effectiveness": 1.0})
    specs = target_specs(cfg)
    loss = TaskLoss(torch.nn.CrossEntropyLoss(), specs, "class", "soft", 0.2, None, group_matrix(cfg))
    outputs = {"class": torch.randn(4, 3), "effectiveness": torch.randn(4, 5)}
    labels = torch.tensor([0, -1, 2, -1])
    targets = torch.tensor([[1], [3], [-1], [-1]])
    full = loss(outputs, labels, targets)
    changed = {k: v.clone() for k, v in outputs.items()}
    changed["class"][1] += 5.0  # row 1 has no class label
    changed["effectiveness"][2] += 5.0  # row 2 has no effectiveness
    changed["class"][3] += 1.0
    changed["effectiveness"][3] -= 1.0  # row 3 has neither
    assert loss(changed, labels, targets) == pytest.approx(float(full))
    nothing = loss(outputs, torch.tensor([-1, -1, -1, -1]), torch.full((4, 1), -1))
    assert float(nothing) == 0.0


def test_aux_data_and_heads_train_end_to_end(cli, train_csv: Path, val_csv: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    val = pd.read_csv(val_csv)
    train = pd.read_csv(train_csv)
    # Auxiliary file: new reviews with an effectiveness rating only, plus 5 validation reviews
    # (the leakage guard must drop them) and 4 training reviews (kept once, from the pool).
    extra = pd.DataFrame(
        {
            "review": [f"{t} (second visit {i})" for i, t in enumerate(train["review"].head(60))]
            + val["review"].head(5).tolist()
            + train["review"].iloc[100:104].tolist(),
            "effectiveness": [1 + i % 5 for i in range(69)],
        }
    )
    aux = tmp_path / "eff.csv"
    extra.to_csv(aux, index=False)
    run = tmp_path / "run"
    res = cli(
        "train", "--model", "textcnn", "--data", train_csv, "--val-data", val_csv, "--preset", "webmd",
        "--test-frac", "0", "--max-epochs", "2", "--set", "textcnn.embed_dim=16", "--set", "textcnn.num_filters=4",
        "--set", "trainer.progress_bar=false", "--set", "trainer.num_threads=1", "--out", run,
        "--main-target", "ordinal", "--aux-target", "effectiveness=0.5", "--aux-data", aux,
    )  # fmt: skip
    assert res.code == 0, res.err
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["leakage_removed"]["aux_in_val_or_test"] == 5
    assert manifest["leakage_removed"]["aux_in_train"] == 4
    assert manifest["splits"]["aux"] == 60 and "aux_0" in manifest["files"]
    saved = json.loads((run / "config.json").read_text())
    assert saved["targets"]["main"] == "ordinal" and saved["targets"]["aux"] == {"effectiveness": 0.5}
    probes = ["Great drug, works well.", "Terrible side effects, stopped it."]
    proba = Predictor(run).predict_proba(probes)
    assert np.allclose(proba.sum(axis=1), 1.0) and np.allclose(Predictor(run).predict_proba(probes), proba)
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0 <= metrics["val"]["macro_f1"] <= 1


def test_targets_the_data_cannot_feed_are_one_line_errors(
    cli, train_csv: Path, val_csv: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    plain = tmp_path / "plain.csv"
    pd.read_csv(train_csv)[["review", "satisfaction"]].to_csv(plain, index=False)
    common = ["--model", "textcnn", "--val-data", val_csv, "--preset", "webmd", "--test-frac", "0",
              "--max-epochs", "1", "--out", tmp_path / "r"]  # fmt: skip
    res = cli("train", "--data", plain, *common, "--aux-target", "effectiveness=0.3")
    assert res.one_line_error("target 'effectiveness' has no values in the training data")
    assert cli("train", "--data", plain, *common, "--aux-target", "mood=1").one_line_error(
        "unknown auxiliary target 'mood'"
    )
    named = {}
    for name, src in (("train", train_csv), ("val", val_csv)):
        frame = pd.read_csv(src)
        label = np.select(
            [frame["satisfaction"] <= 2, frame["satisfaction"] == 3], ["negative", "neutral"], "positive"
        )
        named[name] = tmp_path / f"{name}-labels.csv"
        frame.assign(label=label)[["review", "label"]].to_csv(named[name], index=False)
    res = cli("train", "--model", "textcnn", "--data", named["train"], "--val-data", named["val"],
              "--label-col", "label", "--test-frac", "0", "--out", tmp_path / "r2", "--main-target", "ordinal")  # fmt: skip
    assert res.one_line_error("target 'rating' has no values in the training data; it needs a rating column")
