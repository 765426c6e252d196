"""The HTML report is one self-contained file that a real browser renders (headless Chromium)."""

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from medsent.evaluation.analysis import confusion_heatmap
from medsent.evaluation.report import heading, image, table, write_report

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


def _report(tmp_path: Path) -> Path:
    png = confusion_heatmap([[50, 5, 2], [9, 12, 7], [3, 6, 60]], tmp_path / "cm.png", "demo")
    rows = [{"run": "svm <b>", "macro_f1": 0.5866}, {"run": "bilstm", "macro_f1": 0.5811}]
    return write_report(
        tmp_path / "report.html",
        "demo",
        [heading("Table"), table(rows, text_cols=("run",)), image(png, "cm")],
    )


def test_report_is_escaped_and_self_contained(tmp_path: Path) -> None:
    html = _report(tmp_path).read_text()
    assert "svm &lt;b&gt;" in html and "0.5866" in html
    assert "data:image/png;base64," in html and 'src="http' not in html and "<script" not in html


@pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium on this machine (make test installs it where it can)"
)
def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    from PIL import Image

    report = _report(tmp_path)
    shot = tmp_path / "shot.png"
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1000,900", f"--screenshot={shot}",
    ]  # fmt: skip
    subprocess.run([str(CHROMIUM), *flags, report.as_uri()], check=True, capture_output=True, timeout=120)
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=float)
    assert pixels.shape[:2] == (900, 1000)
    # The embedded heatmap (blue cells) and the text drew: far from a blank white page.
    blue = (pixels[..., 2] > pixels[..., 0] + 40).mean()
    assert blue > 0.005 and pixels.std() > 20
