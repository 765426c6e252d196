from pathlib import Path

from medsent.core.config import CleanConfig, build_config
from medsent.data.dataset import load_labeled
from medsent.data.inspect import inspect_data
from medsent.data.presets import preset_layer


def test_inspect_writes_summary_and_real_png_plots(train_csv: Path, tmp_path: Path) -> None:
    data = load_labeled(train_csv, build_config({"data": preset_layer("webmd")}).data, CleanConfig())
    summary, paths = inspect_data(data, tmp_path / "inspect")
    assert sum(summary["class_counts"].values()) == len(data.frame)
    assert summary["imbalance_ratio"] >= 1
    assert summary["length_words"]["p50"] <= summary["length_words"]["p95"]
    assert sum(summary["per_source"].values()) == len(data.frame)
    for png in (p for p in paths if p.suffix == ".png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 2000
