"""BiLSTM with additive attention and the reference study's V2 regularisation.

Recurrent dropout is DropConnect on the hidden-to-hidden weights (AWD-LSTM's weight drop): one mask
per batch on the recurrent matrices, applied through ``torch.func.functional_call`` so the fused
(cuDNN / oneDNN) LSTM kernel still runs, unlike per-step dropout in a hand-written cell loop.

Each direction is its own one-layer LSTM; the backward one reads every review reversed within its own
length, so padding never reaches a real token's state. That is exact like packed sequences and, on
2 CPU threads, twice as fast (0.31 s vs 0.62 s forward+backward for 64 x 64 tokens).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from medsent.core.config import BiLSTMConfig


class AdditiveAttention(nn.Module):
    """Bahdanau-style scores v^T tanh(W h); padding positions get zero weight."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, dim)
        self.score = nn.Linear(dim, 1, bias=False)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = self.score(torch.tanh(self.proj(h))).squeeze(-1)
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=-1)
        return torch.bmm(weights.unsqueeze(1), h).squeeze(1)


def _norm(dim: int, enabled: bool) -> nn.Module:
    return nn.LayerNorm(dim) if enabled else nn.Identity()


class BiLSTMAttention(nn.Module):
    def __init__(self, vocab_size: int, cfg: BiLSTMConfig, num_classes: int = 3, pad_id: int = 0) -> None:
        super().__init__()
        self.cfg = cfg
        out_dim = 2 * cfg.hidden_dim
        self.embedding = nn.Embedding(vocab_size, cfg.embed_dim, padding_idx=pad_id)
        self.embed_ln = _norm(cfg.embed_dim, cfg.layer_norm)
        self.embed_dropout = nn.Dropout(cfg.embed_dropout)
        self.forward_lstms = nn.ModuleList()
        self.backward_lstms = nn.ModuleList()
        for layer in range(cfg.num_layers):
            in_dim = cfg.embed_dim if layer == 0 else out_dim
            self.forward_lstms.append(nn.LSTM(in_dim, cfg.hidden_dim, batch_first=True))
            self.backward_lstms.append(nn.LSTM(in_dim, cfg.hidden_dim, batch_first=True))
        self.lstm_ln = _norm(out_dim, cfg.layer_norm)
        self.output_dropout = nn.Dropout(cfg.output_dropout)
        self.attention = AdditiveAttention(out_dim) if cfg.attention else None
        self.attention_ln = _norm(out_dim, cfg.layer_norm)
        self.fc1 = nn.Linear(out_dim, cfg.fc_dim)
        self.fc1_ln = _norm(cfg.fc_dim, cfg.layer_norm)
        self.fc_dropout = nn.Dropout(cfg.fc_dropout)
        self.feature_dim = cfg.fc_dim
        self.fc2 = nn.Linear(cfg.fc_dim, num_classes)

    def _lstm(self, lstm: nn.Module, x: torch.Tensor) -> torch.Tensor:
        p = self.cfg.recurrent_dropout
        if not (self.training and p > 0):
            return lstm(x)[0]
        params: dict[str, torch.Tensor] = dict(lstm.named_parameters())
        params["weight_hh_l0"] = F.dropout(params["weight_hh_l0"], p=p, training=True)
        return functional_call(lstm, params, (x,))[0]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(input_ids, attention_mask))

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.head_dropout(features))

    def head_dropout(self, features: torch.Tensor) -> torch.Tensor:
        """The dropout every head on these features uses (auxiliary heads too)."""
        return self.fc_dropout(features)

    def features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The review vector after attention and the first dense layer, which the heads read."""
        lengths = attention_mask.sum(dim=1).clamp(min=1)
        steps = torch.arange(input_ids.shape[1], device=input_ids.device)[None, :]
        mask = steps < lengths[:, None]
        # Reverse each review within its own length; padding stays at the end.
        rev = torch.where(mask, lengths[:, None] - 1 - steps, steps)

        def flip(t: torch.Tensor) -> torch.Tensor:
            return t.gather(1, rev[:, :, None].expand(-1, -1, t.shape[-1]))

        h = self.embed_dropout(self.embed_ln(self.embedding(input_ids)))
        for fwd, bwd in zip(self.forward_lstms, self.backward_lstms, strict=True):
            h = torch.cat([self._lstm(fwd, h), flip(self._lstm(bwd, flip(h)))], dim=-1)
        h = self.output_dropout(self.lstm_ln(h))
        if self.attention is not None:
            pooled = self.attention(h, mask)
        else:  # mean over real tokens
            pooled = (h * mask[..., None]).sum(1) / lengths[:, None]
        return F.relu(self.fc1_ln(self.fc1(self.attention_ln(pooled))))
