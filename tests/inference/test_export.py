"""`medsent export --format hf`: a folder transformers loads, with medsent's own probabilities; and
`--quantize int8`: a transformer's ONNX graph with int8 weights, checked on labelled reviews."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medsent.core.errors import ConfigError
from medsent.data.clean import normalize_text
from medsent.inference.export import export_run
from medsent.inference.predict import Predictor


def _hf_proba(folder: Path, texts: list[str]) -> np.ndarray:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True).eval()
    with torch.inference_mode():
        batch = tok(texts, return_tensors="pt", padding=True, truncation=True)
        return model(**batch).logits.softmax(-1).double().numpy()


def test_hf_export_loads_in_transformers_with_medsents_probabilities(
    cli, transformer_run: Path, val_csv: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    run = tmp_path / "bert"
    shutil.copytree(transformer_run, run)
    assert cli("calibrate", run, "--data", val_csv).code == 0  # a temperature to fold into the head
    res = cli("export", run, "--format", "hf")
    assert res.code == 0 and "max |p_hf - p_medsent|" in res.out, res.err
    folder = tmp_path / "bert-hf"
    config = json.loads((folder / "config.json").read_text())
    assert config["id2label"] == {"0": "Negative", "1": "Neutral", "2": "Positive"}
    assert config["auto_map"]["AutoModelForSequenceClassification"].startswith("modeling_medsent.")
    predictor = Predictor(run)
    raw = pd.read_csv(val_csv)["review"].dropna().tolist()[:40]
    cleaned = [normalize_text(t, predictor.config.clean) for t in raw]
    encoder = predictor.model.encoder  # type: ignore[attr-defined]
    short = [t for t, ids in zip(cleaned, encoder.encode(cleaned), strict=True) if len(ids) < 64][:24]
    assert len(short) >= 5
    ours = predictor.predict_proba(short)
    theirs = _hf_proba(folder, short)  # padded batch: the mask must make padding harmless
    assert np.abs(ours - theirs).max() < 1e-4
    assert predictor.temperature and predictor.temperature != 1.0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no partial folder left
    assert cli("export", run, "--format", "hf").one_line_error("already exists")
    other = tmp_path / "elsewhere"
    assert cli("export", run, "--format", "hf", "--out", other).code == 0 and (other / "README.md").is_file()


def test_hf_export_refuses_what_it_cannot_export(
    cli, svm_run: Path, textcnn_run: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    assert cli("export", svm_run, "--format", "hf", "--out", tmp_path / "x").one_line_error(
        "Hugging Face export is for transformer runs"
    )
    assert cli("export", textcnn_run, "--format", "hf", "--out", tmp_path / "y").one_line_error(
        "Hugging Face export is for transformer runs"
    )
    assert not (tmp_path / "x").exists() and not list(tmp_path.iterdir())
    with pytest.raises(ConfigError, match="inside the run folder"):
        export_run(svm_run, "hf", out=svm_run / "hf")
    with pytest.raises(ConfigError, match="--out does not apply to onnx"):
        export_run(textcnn_run, "onnx", out=tmp_path / "z")


def test_int8_graph_of_a_transformer_is_checked_on_labelled_reviews_and_served(
    cli, transformer_run: Path, textcnn_run: Path, val_csv: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    import onnx

    run = tmp_path / "bert"
    shutil.copytree(transformer_run, run)
    assert cli("export", run, "--quantize", "int8").one_line_error("--data")
    assert cli("export", run, "--quantize", "int4", "--data", val_csv).one_line_error("known: int8")
    assert cli("export", run, "--format", "hf", "--quantize", "int8", "--data", val_csv).one_line_error(
        "onnx exports only"
    )
    assert not (run / "onnx").exists()
    res = cli("export", run, "--quantize", "int8", "--data", val_csv)
    assert res.code == 0 and "int8 on" in res.out and "answers changed" in res.out, res.err
    meta = json.loads((run / "onnx" / "export.json").read_text())
    check = meta["int8_check"]
    assert meta["quantized"] == "int8"
    assert check["reviews"] >= 150 and 0.0 <= check["answers_changed"] <= 1.0
    assert check["macro_f1_float32"] - check["macro_f1_int8"] <= 0.005
    graph = onnx.load(str(run / "onnx" / "model.onnx"))
    ops = {node.op_type for node in graph.graph.node}
    assert "DynamicQuantizeLinear" in ops and ("MatMulInteger" in ops or "DynamicQuantizeMatMul" in ops)
    size = (run / "onnx" / "model.onnx").stat().st_size / 2**20
    assert size < 0.5 * check["float32_megabytes"]
    # Every batch goes to the int8 graph, and its answers are the export check's answers.
    assert meta["onnx_max_rows"] >= 1 << 30
    predictor = Predictor(run)
    assert predictor.backend.startswith("onnxruntime")
    texts = pd.read_csv(val_csv)["review"].dropna().tolist()[:30]
    served = predictor.predict_proba(texts)
    reference = Predictor(run, use_onnx=False).predict_proba(texts)
    assert np.abs(served - reference).max() > 1e-6  # int8 arithmetic, not the float32 network
    assert (served.argmax(1) == reference.argmax(1)).mean() >= 0.8
    cnn = tmp_path / "cnn"
    shutil.copytree(textcnn_run, cnn)
    assert cli("export", cnn, "--quantize", "int8", "--data", val_csv).one_line_error("transformer runs")
    assert not (cnn / "onnx").exists()
