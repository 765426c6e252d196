"""`python -m medsent.interfaces.cli`: the same entry point as the `medsent` command."""

from medsent.interfaces.cli import main

main()
