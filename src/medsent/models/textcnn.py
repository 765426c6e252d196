"""TextCNN (Kim, 2014) with BatchNorm before ReLU, the reference study's V2 model."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from medsent.config import TextCNNConfig


class TextCNN(nn.Module):
    def __init__(self, vocab_size: int, cfg: TextCNNConfig, num_classes: int = 3, pad_id: int = 0) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, cfg.embed_dim, padding_idx=pad_id)
        self.kernel_sizes = tuple(cfg.kernel_sizes)
        self.convs = nn.ModuleList(
            nn.Conv1d(cfg.embed_dim, cfg.num_filters, k, bias=not cfg.batch_norm) for k in cfg.kernel_sizes
        )
        self.norms = nn.ModuleList(
            nn.BatchNorm1d(cfg.num_filters) if cfg.batch_norm else nn.Identity() for _ in cfg.kernel_sizes
        )
        self.dropout = nn.Dropout(cfg.dropout)
        self.feature_dim = cfg.num_filters * len(cfg.kernel_sizes)
        self.head = nn.Linear(self.feature_dim, num_classes)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(input_ids, attention_mask))

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.head_dropout(features))

    def head_dropout(self, features: torch.Tensor) -> torch.Tensor:
        """The dropout every head on these features uses (auxiliary heads too)."""
        return self.dropout(features)

    def features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The pooled review vector the heads read."""
        min_len = max(self.kernel_sizes)
        if input_ids.shape[1] < min_len:
            pad = min_len - input_ids.shape[1]
            input_ids = F.pad(input_ids, (0, pad), value=self.embedding.padding_idx or 0)
            attention_mask = F.pad(attention_mask, (0, pad), value=False)
        x = self.embedding(input_ids).transpose(1, 2)  # (B, E, L)
        lengths = attention_mask.sum(dim=1)
        pooled = []
        for k, conv, norm in zip(self.kernel_sizes, self.convs, self.norms, strict=True):
            h = F.relu(norm(conv(x)))  # (B, F, L-k+1)
            # Max over the windows that start inside the review, not over the padding.
            valid = (
                torch.arange(h.shape[2], device=h.device)[None, :] < (lengths - k + 1).clamp(min=1)[:, None]
            )
            h = h.masked_fill(~valid[:, None, :], float("-inf"))
            pooled.append(h.amax(dim=2))
        return torch.cat(pooled, dim=1)
