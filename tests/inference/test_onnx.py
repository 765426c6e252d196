"""ONNX export: refused where it cannot apply, atomic, and a corrupt export is a one-line error."""

import shutil
from pathlib import Path

import pytest

from medsent.core.errors import ConfigError, RunError
from medsent.inference.export import export_run
from medsent.inference.onnx import onnx_path
from medsent.inference.predict import Predictor


def test_export_refusals_and_corrupt_file(cli, svm_run: Path, textcnn_run: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ONNX export is for neural runs"):
        export_run(svm_run)
    assert cli("export", svm_run, "--format", "tflite").one_line_error("unknown export format 'tflite'")
    run = tmp_path / "cnn"
    shutil.copytree(textcnn_run, run)
    res = cli("export", run)
    assert res.code == 0 and "max |p_onnx - p_torch|" in res.out and "(lookup graph" in res.out
    assert cli("export", run, "--format", "hf", "--compact").one_line_error("--compact applies to onnx")
    assert cli("export", run, "--compact", "--tables", "fp32").one_line_error(
        "--tables applies to onnx lookup"
    )
    assert cli("export", run, "--overwrite", "--tables", "int8").one_line_error("unknown table type 'int8'")
    assert not [p for p in run.iterdir() if p.name.startswith(".")]  # no partial folder left behind
    assert cli("export", run).one_line_error("already exists")
    assert cli("export", run, "--overwrite").code == 0
    onnx_path(run).write_bytes(b"not a protobuf")
    with pytest.raises(RunError, match="cannot load"):
        Predictor(run)
    assert cli("predict", run, "--text", "fine").one_line_error("cannot load")


def test_single_reviews_go_to_onnxruntime_batches_to_the_lookup_form(
    textcnn_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np

    run = tmp_path / "cnn"
    shutil.copytree(textcnn_run, run)
    export_run(run)
    monkeypatch.setenv("MEDSENT_ONNX_MAX_ROWS", "2")
    predictor = Predictor(run)
    net = predictor.model.model
    assert predictor.backend == "onnxruntime (<= 2 rows)+native" and net._torch is None
    texts = ["Worked well.", "Terrible rash.", "It is fine.", "No change at all."] * 5
    small = predictor.predict_proba(texts[:4])  # one review at a time through onnxruntime
    assert net._torch is None and predictor.model._fast is None  # no torch weights loaded for it
    big = predictor.predict_proba(texts)  # files' and servers' batches: the TextCNN's lookup form
    assert predictor.model._fast and net._torch is None
    monkeypatch.setenv("MEDSENT_ONNX", "0")
    native = Predictor(run)
    # the default graph's float16 tables move probabilities by ~1e-4 (fp32 tables: tested above)
    assert np.allclose(small, native.predict_proba(texts[:4]), atol=1e-3)
    assert np.allclose(big, native.predict_proba(texts), atol=1e-3)


def test_a_graph_that_points_at_external_files_is_refused(textcnn_run: Path, tmp_path: Path) -> None:
    import onnx

    run = tmp_path / "cnn"
    shutil.copytree(textcnn_run, run)
    export_run(run)
    model = onnx.load(str(onnx_path(run)))
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value="/etc/passwd")
    onnx.save(model, str(onnx_path(run)))
    with pytest.raises(RunError, match="external weight files"):
        Predictor(run)


def test_an_ensemble_is_exported_member_by_member(
    cli, svm_run: Path, textcnn_run: Path, tmp_path: Path
) -> None:
    assert cli("ensemble", svm_run, textcnn_run, "--out", tmp_path / "ens").code == 0
    assert cli("export", tmp_path / "ens").one_line_error("export one member run at a time")


def test_the_textcnn_graph_is_its_lookup_form_unless_compact_or_too_large(
    textcnn_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lookup tables make single reviews cheap at any width; they cost file size, so the network as
    trained stays one flag (or one size limit) away, and both agree with PyTorch on every length."""
    import numpy as np
    import onnx

    from medsent.inference import onnx as onnx_module
    from medsent.inference.onnx import read_export
    from medsent.models.textcnn import TextCNNLookup

    texts = [
        "ok",
        "Bad.",
        "It made me dizzy but it works.",
        "Great " * 300,
        "No change at all after a month.",
    ]
    monkeypatch.setenv("MEDSENT_ONNX", "0")
    reference = np.vstack([Predictor(textcnn_run).predict_proba([t]) for t in texts])
    monkeypatch.delenv("MEDSENT_ONNX")
    sizes, ops = {}, {}
    forms = (
        ("lookup", {}, 1e-3),
        ("lookup32", {"tables": "fp32"}, 1e-5),
        ("network", {"compact": True}, 1e-5),
    )
    for name, kwargs, tolerance in forms:
        run = tmp_path / name
        shutil.copytree(textcnn_run, run)
        export_run(run, **kwargs)
        meta = read_export(run) or {}
        assert (meta["graph"], meta["tables"]) == {
            "lookup": ("lookup", "fp16"),
            "lookup32": ("lookup", "fp32"),
            "network": ("network", None),
        }[name]
        sizes[name] = onnx_path(run).stat().st_size
        ops[name] = {node.op_type for node in onnx.load(str(onnx_path(run))).graph.node}
        predictor = Predictor(run)
        assert predictor.backend.startswith("onnxruntime")
        single = np.vstack([predictor.predict_proba([t]) for t in texts])
        assert np.allclose(single, reference, atol=tolerance), name
        assert (single.argmax(axis=1) == reference.argmax(axis=1)).all(), name
        batch = predictor.predict_proba(texts * 4)  # a file's batch: the lookup form, in one engine only
        assert np.allclose(batch, np.vstack([reference] * 4), atol=tolerance), name
        routed = predictor.model.model
        if name.startswith("lookup"):  # the graph serves batches: no PyTorch weights or tables built
            assert predictor.model._fast is routed.ort and routed._torch is None
        else:
            assert isinstance(predictor.model._fast, TextCNNLookup)
    assert "Conv" in ops["network"] and "Conv" not in ops["lookup"]
    assert sizes["lookup32"] > sizes["lookup"] > sizes["network"]
    assert sizes["lookup"] < 0.6 * sizes["lookup32"]  # float16 tables: about half the file
    with pytest.raises(ConfigError, match="--tables applies to onnx lookup graphs only"):
        export_run(tmp_path / "network", compact=True, tables="fp32", overwrite=True)
    with pytest.raises(ConfigError, match="unknown table type 'int8'"):
        export_run(tmp_path / "lookup", tables="int8", overwrite=True)
    assert (read_export(tmp_path / "lookup") or {})["tables"] == "fp16"  # a refused export changes nothing
    monkeypatch.setattr(onnx_module, "LOOKUP_MAX_NUMBERS", 1000)  # tables too large for the file
    run = tmp_path / "capped"
    shutil.copytree(textcnn_run, run)
    export_run(run)
    assert (read_export(run) or {})["graph"] == "network"
