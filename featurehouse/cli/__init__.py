"""The ``featurehouse`` command (top layer): ``main`` and the commands of each room."""

from featurehouse.cli.app import main

__all__ = ["main"]
