"""The LightningModule's own choices, on a tiny real fit."""

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from medsent.config import OptimConfig, SchedulerConfig, TextCNNConfig
from medsent.models.textcnn import TextCNN
from medsent.neural.batching import PadCollator
from medsent.neural.data import EncodedDataset
from medsent.neural.losses import DistillLoss
from medsent.neural.module import SentimentModule


def test_a_loss_with_weights_of_its_own_trains_with_the_model() -> None:
    torch.manual_seed(0)
    model = TextCNN(40, TextCNNConfig(embed_dim=8, num_filters=4, kernel_sizes=(2, 3)))
    loss = DistillLoss(torch.nn.CrossEntropyLoss(), 2.0, 0.5, hint=(model.feature_dim, 6, 1.0))
    assert loss.hint_map is not None
    start = loss.hint_map.weight.detach().clone()
    ids = [[int(i) for i in torch.randint(1, 40, (7,))] for _ in range(32)]
    soft = F.softmax(torch.randn(32, 3), -1).numpy()
    data = EncodedDataset(ids, [0, 1, 2, -1] * 8, soft=soft, hint=torch.randn(32, 6).numpy())
    loader = DataLoader(data, batch_size=8, collate_fn=PadCollator([8, 16], 0))
    module = SentimentModule(
        model,
        torch.nn.CrossEntropyLoss(),
        OptimConfig(lr=0.01),
        SchedulerConfig(name="constant"),
        task_loss=loss,
    )
    trainer = L.Trainer(
        max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, limit_val_batches=0, accelerator="cpu",
    )  # fmt: skip
    trainer.fit(module, train_dataloaders=loader)
    assert not torch.allclose(loss.hint_map.weight, start)  # the map was in the optimiser
