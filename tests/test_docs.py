"""The documentation speaks to users and cannot drift from the code."""

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("docs_generate", ROOT / "docs" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_command_has_a_reference_page_that_matches_its_options(
    capsys: pytest.CaptureFixture[str],
) -> None:
    gen = _generator()
    assert gen.main(["--check"]) == 0, capsys.readouterr().err
    documented = set().union(*(gen.documented(p.read_text(encoding="utf-8")) for p in gen.pages()))
    assert {"train", "predict", "serve", "data inspect", "distill"} <= documented


def test_a_stale_page_is_caught(tmp_path: Path) -> None:
    """What the check compares: a page whose table lost an option renders differently."""
    gen = _generator()
    page = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    stale = page.replace("| `--port` |", "| `--portx` |")
    assert stale != page and gen.render(stale, gen.commands()) == page


# Words of a work diary: issue numbers and work periods belong to the tracker, not to the product.
DIARY = re.compile(
    r"\bissue\b|\bissues? ?[-#]?\d+\b|\b(first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|"
    r"twelfth|thirteenth|fourteenth|this|last|next|previous|earlier) session\b|\blease\b",
    re.IGNORECASE,
)


def test_no_diary_or_team_talk_in_the_repository() -> None:
    files = [ROOT / "README.md", ROOT / "BENCHMARKS.md", *(ROOT / "docs").glob("*.md")]
    for folder in ("src", "benchmarks", "tests"):
        files += [p for p in (ROOT / folder).rglob("*") if p.suffix in {".py", ".sh", ".yaml", ".md"}]
    hits = [
        f"{p.relative_to(ROOT)}:{i}: {line.strip()[:80]}"
        for p in files
        if p.name != "test_docs.py"
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if DIARY.search(line)
    ]
    assert not hits, "\n".join(hits)


def test_the_readme_is_a_front_page() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 220
    assert "make demo" in text and "make test" in text and "BENCHMARKS.md" in text
    assert "../shared" not in text.replace("`../shared/data`", "")  # nothing outside the repository
    for page in re.findall(r"\]\((docs/[a-z-]+\.md)\)", text):
        assert (ROOT / page).is_file(), page
