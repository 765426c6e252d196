"""The Typer application, its error handling and logging: every command module registers on ``app``.

Exit codes: 0 success, 2 bad input or usage (one line on stderr), 1 unexpected failure.
"""

from __future__ import annotations

import logging
import sys

import typer

from medsent.core.errors import MedsentError

app = typer.Typer(
    help="medsent: train, evaluate and serve Negative/Neutral/Positive classifiers for drug reviews.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Inspect and prepare review data.", no_args_is_help=True)
app.add_typer(data_app, name="data")


def setup_logging(verbose: bool = True) -> None:
    import warnings

    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(message)s",
        stream=sys.stderr,
    )
    # Lightning logs through its own handler; keep one copy of each line and drop its adverts.
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).propagate = False
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\).*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line and exit 2; anything else exits 1 without a traceback."""
    try:
        app(args=argv, prog_name="medsent")
    except MedsentError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except MemoryError:
        typer.echo("error: out of memory; try a smaller input or batch size", err=True)
        sys.exit(1)
    except Exception as exc:
        typer.echo(f"unexpected error ({type(exc).__name__}): {exc}", err=True)
        sys.exit(1)
