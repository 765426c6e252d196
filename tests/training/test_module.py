"""The LightningModule's own choices, on a tiny real fit."""

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from medsent.core.config import OptimConfig, SchedulerConfig, TextCNNConfig
from medsent.models.textcnn import TextCNN
from medsent.neural.batching import PadCollator
from medsent.neural.losses import DistillLoss
from medsent.training.data import EncodedDataset
from medsent.training.module import SentimentModule


def test_reviews_without_gold_labels_learn_the_teachers_answer() -> None:
    """A distillation batch of unlabelled rows trains on the teacher's probabilities alone."""
    torch.manual_seed(0)
    model = TextCNN(40, TextCNNConfig(embed_dim=8, num_filters=4, kernel_sizes=(2, 3), batch_norm=False))
    ids = [[int(i) for i in torch.randint(1, 40, (7,))] for _ in range(64)]
    teacher = np.tile(np.array([[0.05, 0.05, 0.9]], dtype=np.float32), (64, 1))  # always Positive
    data = EncodedDataset(ids, [-1] * 64, soft=teacher)
    loader = DataLoader(data, batch_size=16, collate_fn=PadCollator([8, 16], 0))
    module = SentimentModule(
        model,
        torch.nn.CrossEntropyLoss(),
        OptimConfig(lr=0.05),
        SchedulerConfig(name="constant"),
        task_loss=DistillLoss(torch.nn.CrossEntropyLoss(), 2.0, 0.5),
    )
    trainer = L.Trainer(
        max_epochs=8, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, limit_val_batches=0, accelerator="cpu",
    )  # fmt: skip
    trainer.fit(module, train_dataloaders=loader)
    model.eval()
    batch = PadCollator([8, 16], 0)([(x, -1) for x in ids])
    with torch.no_grad():
        pred = model(batch["input_ids"], batch["attention_mask"]).argmax(-1)
    assert (pred == 2).float().mean() > 0.95
