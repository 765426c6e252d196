"""Thin adapters over the library: the command line and the Python API."""
