"""medsent's transformer classifier as a Hugging Face model class, for ``medsent export --format hf``.

Copied verbatim into the export folder as ``modeling_medsent.py`` and named in its config's
``auto_map``, so ``AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)``
rebuilds it with torch and transformers alone (medsent need not be installed). Standard classes
cannot express it: they classify a pooler over the first token, medsent pools the mean of all tokens.

Imports nothing from medsent on purpose.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import AutoModel, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput


class MedsentEncoderClassifier(PreTrainedModel):
    """Encoder -> masked mean (or first-token) pooling -> dropout -> linear, as medsent trains it.

    Config fields read besides the encoder's own: ``medsent_pooling`` ("mean" or "cls"),
    ``medsent_dropout``, ``num_labels``.
    """

    base_model_prefix = "encoder"
    supports_gradient_checkpointing = False
    # Attention runs inside the wrapped encoder, which checks its own support for these.
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.encoder = AutoModel.from_config(config)
        self.pooling = str(getattr(config, "medsent_pooling", "mean"))
        self.dropout = nn.Dropout(float(getattr(config, "medsent_dropout", 0.1)))
        self.classifier = nn.Linear(int(config.hidden_size), int(config.num_labels))
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> SequenceClassifierOutput:
        if input_ids is None:
            raise ValueError("input_ids are required")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        kwargs = {k: v for k, v in kwargs.items() if k in ("token_type_ids", "position_ids")}
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        logits = self.classifier(self.dropout(pooled))
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits, labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)
