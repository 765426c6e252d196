"""`python -m medsent.cli`: the same entry point as the `medsent` command."""

from medsent.cli import main

main()
