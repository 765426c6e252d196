"""Hugging Face encoders: offline loading with clear errors, head+tail truncation, freezing and
discriminative learning rates. Loading goes through ``HF_HUB_OFFLINE=1`` unless the user set it."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from medsent.core.config import OptimConfig, TransformerConfig
from medsent.core.errors import ConfigError, RunError
from medsent.models.transformer import (
    TransformerClassifier,
    encoder_embeddings,
    encoder_layers,
    shared_tables,
)

ENCODER_DIR = "encoder"
HEAD_FILE = "head.safetensors"


def resolve_pretrained(name: str) -> str:
    """``minilm`` / ``mpnet`` -> the offline folders from their wheels; an existing path must be a
    model folder; anything else is a hub id."""
    from medsent.neural.encoders import named_encoder

    named = named_encoder(name)
    if named is not None:
        return str(named)
    path = Path(name)
    if path.exists():
        if not (path / "config.json").is_file():
            raise ConfigError(f"{path} is not a Hugging Face model folder (no config.json)")
        return str(path)
    return name


def _offline() -> bool:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    return os.environ["HF_HUB_OFFLINE"] not in ("0", "false", "False", "")


def load_hf_config(name: str) -> Any:
    from transformers import AutoConfig

    source = resolve_pretrained(name)
    offline = _offline()
    try:
        return AutoConfig.from_pretrained(source, local_files_only=offline)
    except (OSError, ValueError) as exc:
        if offline and not Path(source).exists():
            raise ConfigError(
                f"cannot load '{name}': not a local model folder and the hub is off (HF_HUB_OFFLINE=1); "
                "pass a local folder, or set HF_HUB_OFFLINE=0 with network access"
            ) from None
        raise ConfigError(f"cannot load model config from '{name}': {str(exc).splitlines()[0]}") from None


def num_layers(hf_config: Any) -> int:
    for key in ("num_hidden_layers", "n_layer", "num_layers"):
        if isinstance(getattr(hf_config, key, None), int):
            return int(getattr(hf_config, key))
    raise ConfigError(f"cannot tell how many layers {type(hf_config).__name__} has")


def validate_transformer(cfg: TransformerConfig) -> Any:
    """Everything checkable before weights load: the folder, the hub, the freeze count."""
    hf_config = load_hf_config(cfg.pretrained)
    layers = num_layers(hf_config)
    if cfg.freeze_layers > layers:
        raise ConfigError(
            f"transformer.freeze_layers={cfg.freeze_layers} but '{cfg.pretrained}' has {layers} layers"
        )
    if cfg.layer_lrs is not None and not 1 <= len(cfg.layer_lrs) <= layers:
        raise ConfigError(f"transformer.layer_lrs needs 1..{layers} groups, got {len(cfg.layer_lrs)}")
    return hf_config


class HFTextEncoder:
    """A fast tokenizer with [CLS] ... [SEP] ids, cut to max_length by head or head+tail."""

    def __init__(self, tokenizer: Any, cfg: TransformerConfig) -> None:
        self.tokenizer = tokenizer
        self.cfg = cfg
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad) if pad is not None else 0
        # The model's special-token template ([CLS] x [SEP], <s> x </s>, ...), read off one encoding.
        plain = tokenizer("a", add_special_tokens=False)["input_ids"]
        full = tokenizer("a", add_special_tokens=True)["input_ids"]
        at = next(i for i in range(len(full)) if full[i : i + len(plain)] == plain)
        self.prefix, self.suffix = list(full[:at]), list(full[at + len(plain) :])

    @classmethod
    def load(cls, source: str, cfg: TransformerConfig) -> HFTextEncoder:
        from transformers import AutoTokenizer

        try:
            tok = AutoTokenizer.from_pretrained(resolve_pretrained(source), local_files_only=_offline())
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"cannot load a tokenizer from '{source}': {str(exc).splitlines()[0]}"
            ) from None
        if not getattr(tok, "is_fast", False):
            raise ConfigError(f"'{source}' has no fast (Rust) tokenizer; medsent needs tokenizer.json")
        return cls(tok, cfg)

    def _cut(self, seq: list[Any]) -> list[Any]:
        """A body cut to max_length (head, or head and tail), before the special tokens go around it."""
        body = self.cfg.max_length - len(self.prefix) - len(self.suffix)
        if len(seq) <= body:
            return seq
        if self.cfg.truncation == "head_tail":
            head = int(body * self.cfg.head_fraction)
            return seq[:head] + seq[len(seq) - (body - head) :]
        return seq[:body]

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        batch = self.tokenizer(list(texts), add_special_tokens=False, truncation=False)["input_ids"]
        return [self.prefix + self._cut(list(ids)) + self.suffix for ids in batch]

    def encode_with_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int] | None]]:
        """One text's ids as ``encode`` makes them, with each id's character span in the text (None
        for the special tokens): how attributions on word pieces find their way back to words."""
        enc = self.tokenizer(text, add_special_tokens=False, truncation=False, return_offsets_mapping=True)
        pairs = self._cut(list(zip(enc["input_ids"], enc["offset_mapping"], strict=True)))
        ids = self.prefix + [i for i, _ in pairs] + self.suffix
        spans: list[tuple[int, int] | None] = [None] * len(self.prefix)
        spans += [(int(s), int(e)) for _, (s, e) in pairs] + [None] * len(self.suffix)
        return ids, spans

    def save(self, folder: Path) -> None:
        self.tokenizer.save_pretrained(str(folder))


def build_transformer(
    cfg: TransformerConfig, pretrained: bool = True, folder: Path | None = None
) -> TransformerClassifier:
    """The encoder from pre-trained weights (training) or from a run folder's config (prediction)."""
    from transformers import AutoModel

    source = str(folder) if folder is not None else resolve_pretrained(cfg.pretrained)
    try:
        encoder = AutoModel.from_pretrained(source, local_files_only=_offline() or folder is not None)
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"cannot load encoder weights from '{source}': {str(exc).splitlines()[0]}"
        ) from None
    hidden = int(encoder.config.hidden_size)
    # from_pretrained returns eval mode; training needs the encoder's dropout on.
    return TransformerClassifier(encoder.train(), hidden, cfg.pooling, cfg.dropout)


def check_tokenizer_fits(model: TransformerClassifier, encoder: HFTextEncoder) -> None:
    hf_model: Any = model.encoder
    rows = hf_model.get_input_embeddings().num_embeddings
    size = len(encoder.tokenizer)
    if size > rows:
        raise ConfigError(f"tokenizer has {size} tokens but the model's embedding table has {rows} rows")


def freeze(model: TransformerClassifier, cfg: TransformerConfig) -> dict[str, int]:
    """Freeze the embeddings (optionally, with the tables every layer reads, such as MPNet's relative
    position bias) and the bottom N layers; returns the study's parameter counts."""
    if cfg.freeze_embeddings:
        encoder_embeddings(model.encoder).requires_grad_(False)
        for table in shared_tables(model.encoder):
            table.requires_grad_(False)
    for layer in encoder_layers(model.encoder)[: cfg.freeze_layers]:
        layer.requires_grad_(False)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"params_total": total, "params_frozen": total - trainable, "params_trainable": trainable}


def layer_lr_map(n_layers: int, cfg: TransformerConfig, base_lr: float) -> list[float]:
    """Learning rate of each encoder layer, bottom first."""
    if cfg.layer_lrs is not None:
        groups = list(cfg.layer_lrs)
        size = -(-n_layers // len(groups))  # ceil: contiguous groups, bottom group first
        return [groups[min(i // size, len(groups) - 1)] for i in range(n_layers)]
    return [base_lr * cfg.layer_lr_decay ** (n_layers - 1 - i) for i in range(n_layers)]


def transformer_param_groups(model: Any, cfg: TransformerConfig, optim: OptimConfig) -> list[dict[str, Any]]:
    """Embeddings, each encoder layer and the head as their own groups (frozen ones included, so
    gradual unfreezing only has to flip requires_grad); no decay on biases and norm weights."""
    # A TaskNet (extra target heads) holds the classifier as ``base``; its heads train at head_lr.
    encoder = model.encoder if hasattr(model, "encoder") else model.base.encoder
    layers = encoder_layers(encoder)
    lrs = layer_lr_map(len(layers), cfg, optim.lr)
    embed_lr = cfg.embeddings_lr or lrs[0] * (cfg.layer_lr_decay if cfg.layer_lrs is None else 1.0)
    named: list[tuple[str, nn.Module, float]] = [("embeddings", encoder_embeddings(encoder), embed_lr)]
    named += [(f"layer{i}", layer, lrs[i]) for i, layer in enumerate(layers)]
    seen = {id(p) for _, m, _ in named for p in m.parameters()}
    rest = [p for p in model.parameters() if id(p) not in seen]  # pooler, head, final norms
    groups: list[dict[str, Any]] = []
    for name, module, lr in named:
        groups += _split_decay(name, list(module.named_parameters()), lr, optim.weight_decay)
    rest_named = [(n, p) for n, p in model.named_parameters() if id(p) in {id(q) for q in rest}]
    groups += _split_decay("head", rest_named, cfg.head_lr or optim.lr, optim.weight_decay)
    return [g for g in groups if g["params"]]


def _split_decay(
    name: str, params: list[tuple[str, nn.Parameter]], lr: float, wd: float
) -> list[dict[str, Any]]:
    decay = [p for n, p in params if p.ndim > 1 and not n.endswith(".bias")]
    no_decay = [p for n, p in params if not (p.ndim > 1 and not n.endswith(".bias"))]
    return [
        {"params": decay, "lr": lr, "weight_decay": wd, "name": name},
        {"params": no_decay, "lr": lr, "weight_decay": 0.0, "name": f"{name}.no_decay"},
    ]


def save_transformer(model: TransformerClassifier, encoder: HFTextEncoder, folder: Path) -> None:
    """Hugging Face format: encoder weights (safetensors) + config + tokenizer; head as safetensors."""
    from safetensors.torch import save_file

    target = folder / ENCODER_DIR
    hf_model: Any = model.encoder
    hf_model.save_pretrained(str(target))
    encoder.save(target)
    save_file(
        {k: v.detach().cpu().contiguous() for k, v in model.head.state_dict().items()},
        str(folder / HEAD_FILE),
    )


def load_transformer(folder: Path, cfg: TransformerConfig) -> tuple[TransformerClassifier, HFTextEncoder]:
    from safetensors.torch import load_file

    target = folder / ENCODER_DIR
    if not (target / "config.json").is_file():
        raise RunError(f"missing encoder in {target}")
    model = build_transformer(cfg, folder=target)
    try:
        model.head.load_state_dict(load_file(str(folder / HEAD_FILE)))
    except Exception as exc:  # safetensors raises its own error types on a bad file
        raise RunError(f"cannot load {folder / HEAD_FILE}: {exc}") from None
    return model.eval(), HFTextEncoder.load(str(target), cfg)


def unfreeze_next(model: TransformerClassifier, cfg: TransformerConfig, epoch: int) -> int:
    """Gradual unfreezing: after epoch e, the top e frozen layers train too. Returns frozen layers left."""
    layers = encoder_layers(model.encoder)
    still = max(cfg.freeze_layers - epoch, 0)
    for i, layer in enumerate(layers):
        if i >= still:
            layer.requires_grad_(True)
    if still == 0 and cfg.freeze_embeddings and epoch > cfg.freeze_layers:
        encoder_embeddings(model.encoder).requires_grad_(True)
        for table in shared_tables(model.encoder):
            table.requires_grad_(True)
    return still
