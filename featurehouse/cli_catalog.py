"""CLI commands of the catalog: list, describe, search, plan, serve."""

from __future__ import annotations

from featurehouse.cli import main  # noqa: F401
