"""The `medsent` command line: one module per command group, each a thin adapter over the library.

Heavy libraries are imported inside commands so `medsent --help` and `predict` start quickly.
Exit codes: 0 success, 2 bad input or usage, 1 unexpected failure.
"""

# isort: off
# Each module registers its commands on the app as it is imported: this order is `--help`'s order.
from medsent.interfaces.cli import train, evaluate, predict, explain, expose, combine  # noqa: F401
from medsent.interfaces.cli import ablate, distill, pretrain, deploy, info  # noqa: F401
from medsent.interfaces.cli import data  # noqa: F401
from medsent.interfaces.cli.app import app, main

# isort: on

__all__ = ["app", "main"]
