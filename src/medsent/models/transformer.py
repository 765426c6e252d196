"""A Hugging Face encoder with a pooled linear head: the study's BERT model, any encoder allowed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

_STACK_PATHS = ("encoder.layer", "transformer.layer", "encoder.layers", "layers", "h")


def encoder_layers(encoder: nn.Module) -> nn.ModuleList:
    """The stack of transformer blocks, for freezing and per-layer learning rates."""
    node: Any = encoder
    for part in _stack_path(encoder):
        node = getattr(node, part)
    return node


def encoder_embeddings(encoder: nn.Module) -> nn.Module:
    for name in ("embeddings", "embed_tokens", "wte"):
        module = getattr(encoder, name, None)
        if isinstance(module, nn.Module):
            return module
    raise ValueError(f"cannot find the embeddings of {type(encoder).__name__}")


def shared_tables(encoder: nn.Module) -> list[nn.Parameter]:
    """Encoder parameters outside the embeddings, the layer stack and the pooler: tables that every
    layer reads, such as MPNet's relative position bias. Left trainable under frozen layers, they
    make backpropagation run through every frozen layer to reach them (MPNet, 4 to 8 of 12 layers
    frozen: the same cost per step whatever the depth)."""
    inside = {id(p) for m in (encoder_embeddings(encoder), encoder_layers(encoder)) for p in m.parameters()}
    pooler = getattr(encoder, "pooler", None)
    if isinstance(pooler, nn.Module):
        inside |= {id(p) for p in pooler.parameters()}
    return [p for p in encoder.parameters() if id(p) not in inside]


class _Passthrough(nn.Module):
    """Stands in for the embeddings while the encoder runs from cached hidden states."""

    def forward(self, *args: Any, inputs_embeds: torch.Tensor | None = None, **kwargs: Any) -> torch.Tensor:
        assert inputs_embeds is not None
        return inputs_embeds


@contextmanager
def _partial_encoder(encoder: nn.Module, layers: slice, from_hidden: bool) -> Iterator[None]:
    """The encoder with only ``layers`` in its stack (and, ``from_hidden``, its embeddings replaced by
    a passthrough) for the length of one forward pass. The encoder's own forward then builds the
    attention mask (and MPNet's relative position bias) as it does for token ids, so no model
    family needs code of its own."""
    stack = encoder_layers(encoder)
    owner: Any = encoder
    path = _stack_path(encoder)
    for part in path[:-1]:
        owner = getattr(owner, part)
    embed_name = next(n for n in ("embeddings", "embed_tokens", "wte") if hasattr(encoder, n))
    embeddings = getattr(encoder, embed_name)
    try:
        setattr(owner, path[-1], nn.ModuleList(list(stack)[layers]))
        if from_hidden:
            setattr(encoder, embed_name, _Passthrough())
        yield
    finally:
        setattr(owner, path[-1], stack)
        setattr(encoder, embed_name, embeddings)


def _stack_path(encoder: nn.Module) -> list[str]:
    for path in _STACK_PATHS:
        node: Any = encoder
        for part in path.split("."):
            node = getattr(node, part, None)
            if node is None:
                break
        if isinstance(node, nn.ModuleList):
            return path.split(".")
    raise ValueError(f"cannot find the layer stack of {type(encoder).__name__}")


class TransformerClassifier(nn.Module):
    """Encoder -> mean (or [CLS]) pooling -> dropout -> linear. Knows nothing of files or optimisers.

    The input is token ids (batch x length), or, when the embeddings and the bottom
    ``prefix_layers`` layers are frozen and their output was computed once (the frozen-prefix
    cache), those hidden states (batch x length x hidden, floating point): then only the layers
    above the prefix run.
    """

    def __init__(
        self, encoder: nn.Module, hidden_size: int, pooling: str = "mean", dropout: float = 0.1
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.feature_dim = hidden_size
        self.head = nn.Linear(hidden_size, 3)
        self.prefix_layers = 0

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(input_ids, attention_mask))

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.head_dropout(features))

    def head_dropout(self, features: torch.Tensor) -> torch.Tensor:
        """The dropout every head on these features uses (auxiliary heads too)."""
        return self.dropout(features)

    def features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The pooled encoder output (mean over real tokens, or the first token)."""
        mask = attention_mask.long()
        if input_ids.is_floating_point():  # hidden states after the cached frozen prefix
            with _partial_encoder(self.encoder, slice(self.prefix_layers, None), from_hidden=True):
                hidden = self.encoder(inputs_embeds=input_ids, attention_mask=mask).last_hidden_state
        else:
            hidden = self.encoder(input_ids=input_ids, attention_mask=mask).last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)

    def prefix(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, layers: int) -> torch.Tensor:
        """Hidden states after the embeddings and the bottom ``layers`` layers (what the cache stores)."""
        with _partial_encoder(self.encoder, slice(0, layers), from_hidden=False):
            out = self.encoder(input_ids=input_ids, attention_mask=attention_mask.long())
        return out.last_hidden_state
