"""Attribution methods, chosen by name: each scores the reader's tokens of one review toward a class.

- ``linear``: the SVM's decision value split exactly over the n-grams that produced it, each
  n-gram's share over the words it covers; word scores plus the intercept give the decision value.
- ``integrated_gradients``: Captum's layer integrated gradients on the embedding layer of a neural
  run, from an all-padding baseline; word scores (plus what lands on special tokens) add up to the
  change in the class probability, within Captum's convergence delta.
- ``occlusion``: Captum's feature ablation over the words of the text itself: each word's score is
  how much the class probability falls when it is cut out. It needs nothing but predictions, so it
  explains any run, ensembles and cascades included.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from medsent.evaluation.explain.words import Span, covering, model_word_tokens, without

if TYPE_CHECKING:
    from medsent.inference.predict import Predictor


@dataclass
class Attribution:
    """Scores over the reader tokens of one cleaned text. ``rest``: what the method assigns to no
    word (the SVM's intercept, the special tokens of an encoder); ``delta``: Captum's convergence
    delta where the method has one."""

    scores: np.ndarray
    rest: float = 0.0
    delta: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Method(Protocol):
    name: str
    summary: str

    def fits(self, family: str) -> bool:
        """Whether the method explains runs of this family (``models.registry``)."""
        ...

    def attribute(
        self, predictor: Predictor, text: str, spans: Sequence[Span], label: int
    ) -> Attribution: ...


def _share(scores: np.ndarray, tokens: Sequence[int], amount: float) -> bool:
    """Split ``amount`` evenly over ``tokens``; False when there is no token to take it."""
    if not tokens:
        return False
    for i in tokens:
        scores[i] += amount / len(tokens)
    return True


class Linear:
    name = "linear"
    summary = "exact contributions of the SVM's word and character n-grams (SVM runs)"

    def fits(self, family: str) -> bool:
        return family == "sklearn"

    def attribute(self, predictor: Predictor, text: str, spans: Sequence[Span], label: int) -> Attribution:
        from medsent.models.svm import SvmClassifier

        model = predictor.model
        assert isinstance(model, SvmClassifier)
        column = int(np.flatnonzero(model.weights["classes"] == predictor.model_column(label))[0])
        coef = model.weights["coef"][column].astype(np.float64)
        row = model.features([text]).tocsr()
        scores = np.zeros(len(spans))
        rest = float(model.weights["intercept"][column])
        offset = 0
        for branch, docs in model.views([text]).items():
            vec = model.vectorizers[branch]
            find = _word_occurrences if branch == "word" else _char_occurrences
            occurrences = find(vec, docs[0], text, spans)
            width = len(vec.vocabulary_)
            part = row[:, offset : offset + width]
            for f, value in zip(part.indices, part.data, strict=True):
                amount = float(value) * coef[offset + f]
                places = occurrences.get(int(f), [])
                for tokens in places:
                    if not _share(scores, tokens, amount / len(places)):
                        rest += amount / len(places)
                if not places:  # cannot happen while the enumerations match the vectorizers
                    rest += amount
            offset += width
        decision = float(model.decision_function([text])[0, column])
        return Attribution(scores, rest, extra={"decision_value": decision})


def _word_occurrences(vec: Any, view: str, text: str, spans: Sequence[Span]) -> dict[int, list[list[int]]]:
    """Where each word n-gram feature occurs, as the reader tokens each occurrence covers. The word
    view is ``model_text``: one token per word of ``model_word_tokens``, in order."""
    tokens = view.split()
    owners = model_word_tokens(text, spans)
    lo, hi = vec.ngram_range
    out: dict[int, list[list[int]]] = {}
    for n in range(lo, hi + 1):
        for i in range(len(tokens) - n + 1):
            f = vec.vocabulary_.get(" ".join(tokens[i : i + n]))
            if f is not None:
                covered = sorted({t for k in range(i, i + n) if k < len(owners) for t in owners[k]})
                out.setdefault(int(f), []).append(covered)
    return out


def _char_occurrences(vec: Any, view: str, text: str, spans: Sequence[Span]) -> dict[int, list[list[int]]]:
    """Where each character n-gram occurs, enumerated as sklearn's ``char_wb`` analyzer does: each
    whitespace-separated chunk padded with one space each side, every n-gram of it, a chunk shorter
    than n once."""
    doc = view.lower() if vec.lowercase else view
    chunks = [m.span() for m in re.finditer(r"\S+", doc)]
    same = len(doc) == len(text)
    text_chunks = chunks if same else [m.span() for m in re.finditer(r"\S+", text)]
    lo, hi = vec.ngram_range
    out: dict[int, list[list[int]]] = {}
    for k, (s, e) in enumerate(chunks):
        padded = f" {doc[s:e]} "
        whole = covering(spans, *text_chunks[k]) if k < len(text_chunks) else []
        for n in range(lo, hi + 1):
            offset = 0
            places = [0]
            while offset + n < len(padded):
                offset += 1
                places.append(offset)
            for o in places:
                f = vec.vocabulary_.get(padded[o : o + n])
                if f is None:
                    continue
                first, last = s + max(o - 1, 0), s + min(o + n - 1, e - s)
                tokens = covering(spans, first, last) if same and last > first else whole
                out.setdefault(int(f), []).append(tokens)
            if offset == 0:  # sklearn counts a chunk shorter than n once, then stops growing n
                break
    return out


def _first_embedding(net: Any) -> Any:
    import torch

    for module in net.modules():
        if isinstance(module, torch.nn.Embedding):
            return module
    raise ValueError("the network has no embedding layer")


class IntegratedGradients:
    """Steps grow until the path integral converges: 16 first; while Captum's completeness error
    exceeds 5% of f(x) - f(baseline) (Sundararajan et al.'s own check), 32, or straight to 64 when
    the error is far off. Most TextCNN and MiniLM reviews converge at 16, a third of the cost of a
    fixed 50; a BiLSTM's gates need 64, and get them."""

    name = "integrated_gradients"
    summary = "Captum layer integrated gradients on the embeddings (TextCNN, BiLSTM, transformer runs)"
    first_steps, most_steps = 16, 64
    tolerance = 0.05

    def fits(self, family: str) -> bool:
        return family in ("neural", "transformer")

    def attribute(self, predictor: Predictor, text: str, spans: Sequence[Span], label: int) -> Attribution:
        import torch
        from captum.attr import LayerIntegratedGradients

        model: Any = predictor.model
        net = model.torch_network()
        input_ids, mask, baseline, owners = _neural_inputs(model, text, spans)

        def forward(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return torch.softmax(net(input_ids, attention_mask).float(), dim=-1)

        lig = LayerIntegratedGradients(forward, _first_embedding(net))
        column = predictor.model_column(label)
        with torch.no_grad():
            f_x, f_b = (float(forward(ids, mask)[0, column]) for ids in (input_ids, baseline))
        allowed = max(self.tolerance * abs(f_x - f_b), 1e-4)
        steps = self.first_steps
        while True:
            with torch.enable_grad():
                attr, delta = lig.attribute(
                    input_ids,
                    baselines=baseline,
                    additional_forward_args=(mask,),
                    target=column,
                    n_steps=steps,
                    internal_batch_size=steps,
                    return_convergence_delta=True,
                )
            error = float(delta.abs().max())
            if error <= allowed or steps >= self.most_steps:
                break
            steps = 2 * steps if error <= 4 * allowed else self.most_steps
        scores = np.zeros(len(spans))
        rest = 0.0
        for value, tokens in zip(attr.sum(dim=-1)[0].detach().double().tolist(), owners, strict=True):
            if not _share(scores, tokens, value):
                rest += value
        extra = {"f_input": f_x, "f_baseline": f_b, "steps": steps}
        return Attribution(scores, rest, error, extra)


def _neural_inputs(model: Any, text: str, spans: Sequence[Span]) -> tuple[Any, Any, Any, list[list[int]]]:
    """(input ids and attention mask, padded as prediction pads them; the baseline, every token of
    the text turned to padding; the reader tokens behind each position)."""
    import torch

    from medsent.neural.batching import PadCollator

    encoder = getattr(model, "encoder", None)
    if encoder is not None:  # a transformer: word pieces with character offsets, special tokens kept
        ids, places = encoder.encode_with_offsets(text)
        owners = [covering(spans, *p) if p is not None and p[1] > p[0] else [] for p in places]
        pad_id, buckets, in_text = (
            encoder.pad_id,
            model.cfg.transformer.buckets,
            [p is not None for p in places],
        )
    else:
        from medsent.inference.neural import text_view
        from medsent.neural.vocab import PAD_ID

        ids = model.vocab.encode(text_view([text], model.cfg))[0]
        owners = model_word_tokens(text, spans)[: len(ids)]
        owners += [[]] * (len(ids) - len(owners))
        pad_id, buckets, in_text = PAD_ID, model.cfg.vocab.buckets, [True] * len(ids)
    batch = PadCollator(buckets, pad_id)([(ids, 0)])
    input_ids = batch["input_ids"]
    baseline = input_ids.clone()
    baseline[0, : len(ids)][torch.tensor(in_text)] = pad_id
    owners += [[]] * (input_ids.shape[1] - len(owners))
    return input_ids, batch["attention_mask"], baseline, owners


class Occlusion:
    name = "occlusion"
    summary = "drop one word at a time and watch the probability (any run, ensembles and cascades too)"

    def fits(self, family: str) -> bool:
        return True

    def attribute(self, predictor: Predictor, text: str, spans: Sequence[Span], label: int) -> Attribution:
        def score(texts: list[str]) -> np.ndarray:
            return np.asarray(predictor.predict_proba(texts)[:, label], dtype=np.float64)

        return Attribution(occlude(score, text, spans))


def occlude(score: Callable[[list[str]], np.ndarray], text: str, spans: Sequence[Span]) -> np.ndarray:
    """Each token's score: the class probability of the text less that of the text without the token
    (Captum's ``FeatureAblation`` over keep-flags, one batch of texts per call of ``score``)."""
    import torch
    from captum.attr import FeatureAblation

    n = len(spans)
    if n == 0:
        return np.zeros(0)

    def forward(keep: torch.Tensor) -> torch.Tensor:
        texts = [without(text, spans, [not bool(k) for k in row]) for row in keep]
        return torch.as_tensor(score(texts), dtype=torch.float64)

    ablation = FeatureAblation(forward)
    attr = ablation.attribute(
        torch.ones(1, n, dtype=torch.float64), baselines=0.0, perturbations_per_eval=min(n, 256)
    )
    return np.asarray(attr[0].numpy(), dtype=np.float64)


METHODS: dict[str, Method] = {m.name: m for m in (Linear(), IntegratedGradients(), Occlusion())}
