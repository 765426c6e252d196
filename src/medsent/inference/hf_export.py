"""A transformer run as a Hugging Face sequence-classification folder.

The folder holds the encoder and head weights (safetensors), the tokenizer, a config with
``id2label`` and an ``auto_map`` to ``modeling_medsent.py`` (see ``hf_modeling``), and a model card.
The run's temperature is folded into the head (logits / T), so the folder's softmax equals
``medsent predict``'s calibrated probabilities on cleaned text; the export checks that to 1e-4.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medsent._version import __version__
from medsent.core.errors import ConfigError, RunError
from medsent.core.labels import LABELS

MODELING_FILE = "modeling_medsent.py"
CLASS_NAME = "MedsentEncoderClassifier"
TOLERANCE = 1e-4


def _transformer_parts(predictor: Any) -> tuple[Any, Any]:
    """The run's TransformerClassifier and HFTextEncoder, or a one-line refusal."""
    from medsent.models.transformer import TransformerClassifier
    from medsent.neural.hf import HFTextEncoder
    from medsent.neural.targets import TaskNet

    clf = predictor.model
    net, encoder = getattr(clf, "model", None), getattr(clf, "encoder", None)
    if isinstance(net, TaskNet):
        if net.main != "class":
            raise ConfigError(
                f"run {predictor.run_dir} predicts through its ordinal rating head; "
                "Hugging Face export covers runs with the 3-class head (targets.main=class)"
            )
        net = net.base  # the auxiliary heads do not take part in predictions
    if not isinstance(net, TransformerClassifier) or not isinstance(encoder, HFTextEncoder):
        raise ConfigError(
            f"run {predictor.run_dir} holds a '{predictor.model_name}' model; "
            "Hugging Face export is for transformer runs (medsent train --model transformer)"
        )
    return net, encoder


def write_hf(predictor: Any, folder: Path, probe_texts: list[str] | None = None) -> dict[str, Any]:
    """Write the folder and check it against ``predictor`` (a PyTorch-backed Predictor)."""
    from medsent.inference.hf_modeling import MedsentEncoderClassifier

    net, encoder = _transformer_parts(predictor)
    cfg = copy.deepcopy(net.encoder.config)
    id2label = dict(enumerate(LABELS))
    cfg.num_labels = len(LABELS)
    cfg.id2label = id2label
    cfg.label2id = {name: i for i, name in id2label.items()}
    cfg.architectures = [CLASS_NAME]
    cfg.auto_map = {"AutoModelForSequenceClassification": f"{MODELING_FILE[:-3]}.{CLASS_NAME}"}
    cfg.medsent_pooling = net.pooling
    cfg.medsent_dropout = float(net.dropout.p)
    temperature = predictor.temperature or 1.0
    cfg.medsent = {
        "version": __version__,
        "run": str(predictor.run_dir),
        "model": predictor.model_name,
        "temperature_folded_into_head": temperature,
        "max_length": predictor.config.transformer.max_length,
        "truncation": predictor.config.transformer.truncation,
    }
    model = MedsentEncoderClassifier(cfg).eval()
    model.encoder.load_state_dict(net.encoder.state_dict())
    # Rows follow our label order; the run's own order may be a permutation of it.
    order = torch.as_tensor(predictor._order if predictor._order is not None else range(len(LABELS)))
    with torch.no_grad():
        model.classifier.weight.copy_(net.head.weight[order] / temperature)
        model.classifier.bias.copy_(net.head.bias[order] / temperature)
    model.save_pretrained(str(folder))
    tokenizer = copy.deepcopy(encoder.tokenizer)
    tokenizer.model_max_length = predictor.config.transformer.max_length
    tokenizer.save_pretrained(str(folder))
    shutil.copyfile(Path(__file__).with_name("hf_modeling.py"), folder / MODELING_FILE)
    diff = check_hf_folder(predictor, folder, probe_texts)
    (folder / "README.md").write_text(_model_card(predictor, diff), encoding="utf-8")
    return {
        "format": "hf",
        "max_abs_prob_diff": diff,
        "temperature": temperature,
        "labels": list(LABELS),
        "class": CLASS_NAME,
    }


def hf_probabilities(folder: Path, texts: list[str], max_length: int) -> np.ndarray:
    """Softmax of the exported folder, loaded the way a transformers user loads it."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(
        str(folder), local_files_only=True, trust_remote_code=True
    ).eval()
    out = []
    with torch.inference_mode():
        for text in texts:
            batch = tok([text], truncation=True, max_length=max_length, return_tensors="pt")
            out.append(torch.softmax(model(**batch).logits.float(), dim=-1)[0].numpy())
    return np.asarray(out, dtype=np.float64)


def check_hf_folder(predictor: Any, folder: Path, probe_texts: list[str] | None = None) -> float:
    """Largest probability difference between the folder and ``medsent predict`` on cleaned probes
    short enough that head+tail truncation and plain truncation agree."""
    from medsent.data.clean import normalize_text
    from medsent.inference.onnx import DEFAULT_PROBES

    _, encoder = _transformer_parts(predictor)
    limit = predictor.config.transformer.max_length - len(encoder.prefix) - len(encoder.suffix)
    texts = [normalize_text(t, predictor.config.clean) for t in (probe_texts or []) + DEFAULT_PROBES]
    texts = [
        t for t, ids in zip(texts, encoder.encode(texts), strict=True) if t.strip() and len(ids) <= limit
    ]
    try:
        theirs = hf_probabilities(folder, texts, predictor.config.transformer.max_length)
    except Exception as exc:  # transformers raises many types for a folder it cannot load
        first = (str(exc) or type(exc).__name__).splitlines()[0]
        raise RunError(f"the exported folder does not load in transformers: {first}") from None
    ours = predictor.predict_proba(texts)
    diff = float(np.abs(ours - theirs).max())
    if diff > TOLERANCE:
        raise RunError(f"exported probabilities differ from medsent by {diff:.2e} (> {TOLERANCE}); refused")
    return diff


def _model_card(predictor: Any, diff: float) -> str:
    metrics: dict[str, Any] = predictor.run.metrics.get("val", {}) or {}
    score = (
        f"validation macro-F1 {metrics['macro_f1']:.4f}, kappa {metrics['kappa']:.4f} (n={metrics['n']})"
        if {"macro_f1", "kappa", "n"} <= set(metrics)
        else "validation figures: see the run's metrics"
    )
    return f"""---
library_name: transformers
pipeline_tag: text-classification
tags: [medsent, sentiment, drug-reviews]
---
# medsent drug-review sentiment classifier

Negative / Neutral / Positive for patient drug reviews, exported by medsent {__version__} from
the run `{predictor.run_dir.name}` ({predictor.model_name}, {predictor.config.transformer.pretrained}).
{score}.

```python
from transformers import AutoModelForSequenceClassification, AutoTokenizer
tok = AutoTokenizer.from_pretrained(FOLDER)
model = AutoModelForSequenceClassification.from_pretrained(FOLDER, trust_remote_code=True)
batch = tok(["No side effects and it works"], return_tensors="pt", truncation=True)
probs = model(**batch).logits.softmax(-1)  # columns: config.id2label
```

- `trust_remote_code=True` loads `modeling_medsent.py` from this folder (torch + transformers only):
  the classifier pools the mean of all tokens, which no built-in class does.
- Probabilities are the run's calibrated ones (temperature folded into the head); they matched
  `medsent predict` to {diff:.1e} on cleaned text at export.
- medsent cleans text first (HTML entities, broken encodings, URLs, whitespace) and keeps the head and
  tail of reviews longer than {predictor.config.transformer.max_length} tokens; plain truncation here
  keeps the head only.
"""
