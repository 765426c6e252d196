"""The GPU levers, checked where they can be on a CPU: device-resident batches equal the DataLoader's,
a run trained with them saves and loads like any other, cuda_buckets leave the CPU alone."""

import json
from pathlib import Path

import numpy as np
import torch

from medsent.core.config import TrainerConfig
from medsent.inference.predict import Predictor
from medsent.models.textcnn import TextCNN
from medsent.neural.batching import PadCollator
from medsent.training.data import BucketBatchSampler, DeviceBatches, EncodedDataset
from medsent.training.fit import compile_network, shape_buckets


def test_device_batches_are_the_dataloader_batches() -> None:
    rng = np.random.default_rng(0)
    ids = [list(rng.integers(2, 50, size=int(rng.integers(3, 65)))) for _ in range(300)]  # <= last bucket
    data = EncodedDataset(ids, list(rng.integers(0, 3, size=300)), soft=rng.dirichlet([1, 1, 1], size=300))
    buckets = [16, 32, 64]
    device = DeviceBatches(data, buckets, 0, 8, True, 3, torch.device("cpu"))
    sampler = BucketBatchSampler([len(x) for x in ids], buckets, 8, True, 3)
    collate = PadCollator(buckets, 0, static=True)
    for epoch in (0, 4):
        device.set_epoch(epoch)
        sampler.set_epoch(epoch)
        got = list(device)
        assert len(got) == len(sampler) == len(device)
        for batch, idx in zip(got, sampler, strict=True):
            want = collate([data[i] for i in idx])
            assert set(batch) == set(want) == {"input_ids", "attention_mask", "labels", "soft"}
            assert all(torch.equal(batch[k], want[k]) for k in want)


def test_a_run_trained_from_device_batches_is_a_normal_run(
    cli, train_csv: Path, val_csv: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    run = tmp_path / "run"
    res = cli(
        "train", "--model", "textcnn", "--data", train_csv, "--val-data", val_csv, "--preset", "webmd",
        "--test-frac", "0", "--max-epochs", "2", "--set", "textcnn.embed_dim=16", "--set", "trainer.num_threads=1",
        "--set", "trainer.device_data=device", "--set", "trainer.progress_refresh=10", "--out", run,
    )  # fmt: skip
    assert res.code == 0, res.err
    assert json.loads((run / "config.json").read_text())["trainer"]["device_data"] == "device"
    assert Predictor(run).predict_proba(["works well, no side effects"]).shape == (1, 3)


def test_cuda_buckets_only_apply_on_a_gpu_and_compile_keeps_the_weights_layout() -> None:
    tc = TrainerConfig(cuda_buckets=(256,), accelerator="cpu")
    assert shape_buckets([16, 32, 64], tc, 64) == [16, 32, 64]
    model = TextCNN(
        30,
        __import__("medsent.core.config", fromlist=["TextCNNConfig"]).TextCNNConfig(
            embed_dim=8, num_filters=2
        ),
    )
    keys = list(model.state_dict())
    assert compile_network(model) is model and list(model.state_dict()) == keys
