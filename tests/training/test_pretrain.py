"""`medsent pretrain`: masked-LM continued training on review text, held-out reviews never read."""

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from medsent.core.config import CleanConfig, PretrainConfig
from medsent.core.errors import DataError
from medsent.training.pretrain import build_corpus, work_dir_for

TINY = ["--max-steps", "4", "--batch-size", "8", "--set", "max_length=64", "--set", "progress_bar=false",
        "--set", "holdout_frac=0.05", "--set", f"num_threads={os.cpu_count() or 1}"]  # fmt: skip


def test_corpus_drops_held_out_reviews_and_refuses_held_out_files(
    train_csv: Path, val_csv: Path, tmp_path: Path
) -> None:
    train = pd.read_csv(train_csv)
    mixed = tmp_path / "mixed.csv"
    val = pd.read_csv(val_csv)
    pd.concat([train.head(40), val.head(7)]).to_csv(mixed, index=False)
    texts, stats = build_corpus([mixed], [val_csv], PretrainConfig(), CleanConfig())
    assert stats["removed_as_held_out"] == 7 and stats["reviews"] == len(texts) <= 40
    with pytest.raises(DataError, match="held-out file"):
        build_corpus([val_csv], [val_csv], PretrainConfig(), CleanConfig())


def test_pretrained_encoder_is_a_folder_train_accepts(
    cli, train_csv: Path, val_csv: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    enc = tmp_path / "enc"
    res = cli("pretrain", "--data", train_csv, "--held-out", val_csv, "--out", enc, *TINY)
    assert res.code == 0, res.err
    summary = json.loads((enc / "pretrain.json").read_text())
    assert summary["steps"] == 4 and summary["history"][-1]["val_mlm_loss"] > 0
    assert (enc / "config.json").is_file() and (enc / "model.safetensors").is_file()
    assert not work_dir_for(enc).exists()
    run = tmp_path / "run"
    res = cli(
        "train", "--model", "transformer", "--pretrained", enc, "--data", train_csv, "--val-data", val_csv,
        "--preset", "webmd", "--test-frac", "0", "--max-epochs", "1", "--set", "transformer.freeze_layers=5",
        "--set", "transformer.max_length=64", "--set", "trainer.limit_train_batches=2",
        "--set", "trainer.progress_bar=false", "--out", run,
    )  # fmt: skip
    assert res.code == 0, res.err
    assert json.loads((run / "config.json").read_text())["transformer"]["pretrained"] == str(enc)
    assert cli("pretrain", "--data", val_csv, "--held-out", val_csv, "--out", tmp_path / "x").one_line_error(
        "held-out file"
    )


@pytest.mark.slow
def test_a_killed_pretraining_resumes_from_its_last_checkpoint(  # type: ignore[no-untyped-def]
    kill_9, train_csv: Path, tmp_path: Path
) -> None:
    enc = tmp_path / "enc"
    argv = ["pretrain", "--data", str(train_csv), "--out", str(enc),
            "--max-steps", "8", "--batch-size", "4", "--set", "max_length=32", "--set", "progress_bar=false",
            "--set", "checkpoint_every_n_steps=2", "--set", "holdout_frac=0.05"]  # fmt: skip
    last = work_dir_for(enc) / "checkpoints" / "last.ckpt"
    kill_9(argv, last.exists, pause=0.5)
    assert not enc.exists() and last.exists()
    done = kill_9.run("pretrain", "--resume", str(enc))
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((enc / "pretrain.json").read_text())["steps"] == 8
