"""The ``featurehouse`` command (top layer): ``main`` and the commands of each room."""

from featurehouse.cli import catalog, online  # noqa: F401  (their commands join `main`)
from featurehouse.cli.app import main

__all__ = ["main"]
