"""Writes the option tables of the command reference pages from the CLI itself.

Each page under docs/ holds blocks like::

    <!-- options: train -->
    ...generated table...
    <!-- end options -->

``python docs/generate.py`` rewrites every block from ``medsent <command> --help``'s own options;
``--check`` exits 1 when a page differs from what the CLI says (the test suite runs it), so the
reference cannot drift from the code.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click
import typer.main

DOCS = Path(__file__).resolve().parent
BLOCK = re.compile(r"(<!-- options: (?P<cmd>[a-z -]+) -->\n)(?P<body>.*?)(<!-- end options -->)", re.S)


def commands() -> dict[str, click.Command]:
    """Every leaf command by its full name ("train", "data inspect")."""
    from medsent.interfaces.cli import app

    root = typer.main.get_command(app)
    out: dict[str, click.Command] = {}

    def walk(group: click.Command, prefix: str) -> None:
        ctx = click.Context(group)
        for name in group.list_commands(ctx):  # type: ignore[attr-defined]
            sub = group.get_command(ctx, name)  # type: ignore[attr-defined]
            if sub is None:
                continue
            if hasattr(sub, "list_commands"):
                walk(sub, f"{prefix}{name} ")
            else:
                out[f"{prefix}{name}"] = sub

    walk(root, "")
    return out


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def options_table(cmd: click.Command) -> str:
    """Arguments and options of one command, as the CLI declares them."""
    rows = ["| argument / option | what it does |", "|---|---|"]
    for param in cmd.params:
        if param.name == "help":
            continue
        if param.param_type_name == "argument":
            name = f"`{param.name.upper()}`" if param.name else ""
            help_text = getattr(param, "help", None) or ""
        else:
            names = [*param.opts, *param.secondary_opts]
            name = " / ".join(f"`{n}`" for n in names)
            help_text = getattr(param, "help", None) or ""
        rows.append(f"| {name} | {_cell(help_text)} |")
    return "\n".join(rows) + "\n"


def render(text: str, known: dict[str, click.Command]) -> str:
    def fill(m: re.Match[str]) -> str:
        name = m.group("cmd").strip()
        if name not in known:
            raise SystemExit(f"docs: no command 'medsent {name}'; known: {', '.join(sorted(known))}")
        return f"{m.group(1)}{options_table(known[name])}{m.group(4)}"

    return BLOCK.sub(fill, text)


def pages() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


def documented(text: str) -> set[str]:
    return {m.group("cmd").strip() for m in BLOCK.finditer(text)}


def main(argv: list[str]) -> int:
    known = commands()
    stale, seen = [], set()
    for page in pages():
        text = page.read_text(encoding="utf-8")
        seen |= documented(text)
        new = render(text, known)
        if new != text:
            stale.append(page.name)
            if "--check" not in argv:
                page.write_text(new, encoding="utf-8")
    missing = sorted(set(known) - seen)
    if missing:
        print(f"commands without a reference page: {', '.join(missing)}", file=sys.stderr)
        return 1
    if stale and "--check" in argv:
        print(f"out of date with the CLI: {', '.join(stale)}; run python docs/generate.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
