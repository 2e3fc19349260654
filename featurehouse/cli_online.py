"""CLI commands of the online half: sync, get-online-features, check."""

from __future__ import annotations

from featurehouse.cli import main  # noqa: F401
