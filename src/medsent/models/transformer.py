"""A Hugging Face encoder with a pooled linear head: the study's BERT model, any encoder allowed."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def encoder_layers(encoder: nn.Module) -> nn.ModuleList:
    """The stack of transformer blocks, for freezing and per-layer learning rates."""
    for path in ("encoder.layer", "transformer.layer", "encoder.layers", "layers", "h"):
        node: Any = encoder
        for part in path.split("."):
            node = getattr(node, part, None)
            if node is None:
                break
        if isinstance(node, nn.ModuleList):
            return node
    raise ValueError(f"cannot find the layer stack of {type(encoder).__name__}")


def encoder_embeddings(encoder: nn.Module) -> nn.Module:
    for name in ("embeddings", "embed_tokens", "wte"):
        module = getattr(encoder, name, None)
        if isinstance(module, nn.Module):
            return module
    raise ValueError(f"cannot find the embeddings of {type(encoder).__name__}")


class TransformerClassifier(nn.Module):
    """Encoder -> mean (or [CLS]) pooling -> dropout -> linear. Knows nothing of files or optimisers."""

    def __init__(
        self, encoder: nn.Module, hidden_size: int, pooling: str = "mean", dropout: float = 0.1
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.feature_dim = hidden_size
        self.head = nn.Linear(hidden_size, 3)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(input_ids, attention_mask))

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.head_dropout(features))

    def head_dropout(self, features: torch.Tensor) -> torch.Tensor:
        """The dropout every head on these features uses (auxiliary heads too)."""
        return self.dropout(features)

    def features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The pooled encoder output (mean over real tokens, or the first token)."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask.long()).last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
