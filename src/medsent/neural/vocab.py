"""Word-level vocabulary with Hugging Face `tokenizers`, saved as tokenizer.json in the run folder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tokenizers import Tokenizer, models, pre_tokenizers, trainers

from medsent.core.config import VocabConfig
from medsent.core.errors import RunError

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1
FILE = "tokenizer.json"


class WordVocab:
    """Whitespace-split WordLevel model: negation-tagged tokens (NEG_x) stay whole."""

    def __init__(self, tokenizer: Tokenizer, max_len: int) -> None:
        self.tokenizer = tokenizer
        self.max_len = max_len
        if tokenizer.token_to_id(PAD) != PAD_ID or tokenizer.token_to_id(UNK) != UNK_ID:
            raise RunError("word vocabulary must have <pad>=0 and <unk>=1")
        # The texts are already tokens joined by single spaces (model_text), which is all the
        # tokenizer's WhitespaceSplit + WordLevel does; a dict lookup gives the same ids 10x faster
        # than building Encoding objects.
        self._ids: dict[str, int] = tokenizer.get_vocab()

    @classmethod
    def build(cls, texts: Sequence[str], cfg: VocabConfig) -> WordVocab:
        tok = Tokenizer(models.WordLevel(unk_token=UNK))
        tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        trainer = trainers.WordLevelTrainer(
            vocab_size=cfg.max_size,
            min_frequency=cfg.min_freq,
            special_tokens=[PAD, UNK],
            show_progress=False,
        )
        tok.train_from_iterator(texts, trainer)
        return cls(tok, cfg.max_len)

    @property
    def size(self) -> int:
        return int(self.tokenizer.get_vocab_size())

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids, cut at max_len; an empty text becomes one <unk> so every row has a token."""
        get, cut = self._ids.get, self.max_len
        return [[get(t, UNK_ID) for t in text.split()[:cut]] or [UNK_ID] for text in texts]

    def coverage(self, texts: Sequence[str]) -> float:
        """Share of running tokens that are in the vocabulary (the study's 50K vocab: 96.8%)."""
        total = known = 0
        for enc in self.tokenizer.encode_batch(list(texts), add_special_tokens=False):
            total += len(enc.ids)
            known += sum(1 for i in enc.ids if i != UNK_ID)
        return known / total if total else 0.0

    def save(self, folder: Path) -> None:
        self.tokenizer.save(str(folder / FILE))

    @classmethod
    def load(cls, folder: Path, max_len: int) -> WordVocab:
        try:
            return cls(Tokenizer.from_file(str(folder / FILE)), max_len)
        except Exception as exc:  # the tokenizers library raises a plain Exception on bad JSON
            raise RunError(f"cannot load vocabulary {folder / FILE}: {exc}") from None
