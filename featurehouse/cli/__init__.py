"""The ``featurehouse`` command (top layer): ``main`` and the commands of each room."""

# imported for their commands, which join `main`
from featurehouse.cli import catalog, online  # noqa: F401
from featurehouse.cli.app import main

__all__ = ["main"]
