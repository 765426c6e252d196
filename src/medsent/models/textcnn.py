"""TextCNN (Kim, 2014) with BatchNorm before ReLU, the reference study's V2 model."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from medsent.core.config import TextCNNConfig


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
            # Pool over the windows that start inside the review, not over the padding.
            valid = (
                torch.arange(h.shape[2], device=h.device)[None, :] < (lengths - k + 1).clamp(min=1)[:, None]
            )
            pooled.append(_max_pool(h, valid[:, None, :], 2))
        return torch.cat(pooled, dim=1)

    def inference_form(self, max_numbers: int = 1 << 28, half: bool = False) -> nn.Module | None:
        """The same function for eval-mode inference, by table lookups (``TextCNNLookup``); None when
        the tables would be too large (vocabulary x kernel widths x filters above ``max_numbers``).
        ``half``: tables stored as float16 (half the bytes; sums stay float32)."""
        conv: Any = self.convs[0]
        size = self.embedding.num_embeddings * sum(self.kernel_sizes) * int(conv.out_channels)
        return TextCNNLookup(self, half=half).eval() if size <= max_numbers else None


class TextCNNLookup(nn.Module):
    """The same function as an eval-mode TextCNN, computed with table lookups instead of convolutions.

    A convolution over word embeddings is linear in each window position: output(t) = sum_j
    E[x(t+j)] @ W_j. Multiplying every vocabulary row by every kernel slice once (``V x k x F``
    numbers per kernel size) turns inference into gathers and adds: ~600x fewer operations for 300-d
    embeddings and 100 filters, identical up to float rounding (tested). Built from a trained model at
    load time; never trained, never saved. ``half`` stores the tables as float16 and adds in float32:
    an exported graph half the size, whose probabilities move by ~1e-4 (no changed answer on
    webmd_val for the WebMD preset's students).
    """

    def __init__(self, model: TextCNN, half: bool = False) -> None:
        super().__init__()
        self.kernel_sizes = model.kernel_sizes
        self.pad_id = model.embedding.padding_idx or 0
        emb = model.embedding.weight.detach().float()
        tables, scales, shifts = [], [], []
        conv: Any
        norm: Any
        with torch.no_grad():
            for conv, norm in zip(model.convs, model.norms, strict=True):
                w = conv.weight.detach().float()  # (F, E, k)
                # table[j] = emb @ w[:, :, j].T : (V, F) per kernel offset j -> (k, V, F)
                tables.append(torch.einsum("ve,fek->kvf", emb, w).contiguous())
                if isinstance(norm, nn.BatchNorm1d):
                    bn: Any = norm  # eval mode: a per-filter affine map from the running statistics
                    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                    shift = bn.bias - bn.running_mean * scale
                else:
                    scale = torch.ones(w.shape[0])
                    shift = torch.zeros(w.shape[0])
                if conv.bias is not None:
                    shift = shift + conv.bias * scale
                scales.append(scale.detach().float())
                shifts.append(shift.detach().float())
        # float16 only where every entry fits its range (|x| < 65504); else float32, whatever was asked
        halves = [t.half() for t in tables] if half else []
        if halves and all(bool(torch.isfinite(t).all()) for t in halves):
            tables = halves
        self.table_type = "fp16" if tables[0].dtype == torch.float16 else "fp32"
        self.tables = nn.ParameterList([nn.Parameter(t, requires_grad=False) for t in tables])
        self.scales: torch.Tensor
        self.shifts: torch.Tensor
        self.register_buffer("scales", torch.stack(scales), persistent=False)
        self.register_buffer("shifts", torch.stack(shifts), persistent=False)
        self.head = model.head

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        min_len = max(self.kernel_sizes)
        if input_ids.shape[1] < min_len:
            pad = min_len - input_ids.shape[1]
            input_ids = F.pad(input_ids, (0, pad), value=self.pad_id)
            attention_mask = F.pad(attention_mask, (0, pad), value=False)
        lengths = attention_mask.sum(dim=1)
        length = input_ids.shape[1]
        pooled = []
        for i, k in enumerate(self.kernel_sizes):
            table = self.tables[i]  # (k, V, F)
            width = length - k + 1
            h = F.embedding(input_ids[:, :width], table[0]).float()
            for j in range(1, k):
                h.add_(F.embedding(input_ids[:, j : j + width], table[j]).float())  # (B, width, F)
            h = F.relu(torch.addcmul(self.shifts[i], h, self.scales[i]))
            valid = torch.arange(width, device=h.device)[None, :] < (lengths - k + 1).clamp(min=1)[:, None]
            pooled.append(_max_pool(h, valid[:, :, None], 1))
        return self.head(torch.cat(pooled, dim=1))


def _max_pool(h: torch.Tensor, valid: torch.Tensor, dim: int) -> torch.Tensor:
    """Max of ReLU outputs ``h`` over the valid windows along ``dim``."""
    return h.masked_fill(~valid, float("-inf")).amax(dim=dim)
