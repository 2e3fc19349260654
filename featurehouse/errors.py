"""The error hierarchy: every user mistake becomes one of these, with one clear sentence.

The CLI prints ``Error: <message>`` and exits 1; only ``--debug`` shows a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class FeaturehouseError(Exception):
    """Base of every error featurehouse raises on purpose."""


class SpecError(FeaturehouseError):
    """A spec or config file is invalid; carries the file and line it comes from."""

    def __init__(self, message: str, file: str | None = None, line: int | None = None):
        self.message = message
        self.file = file
        self.line = line
        where = f"{file}:{line}: " if file and line else (f"{file}: " if file else "")
        super().__init__(f"{where}{message}")


class ConfigError(FeaturehouseError):
    """featurehouse.yml, dbt_project.yml or profiles.yml is missing or invalid."""


class CompileError(FeaturehouseError):
    """The compiler cannot produce the dbt models."""


class RequestError(FeaturehouseError):
    """A request for features names something that does not exist or is malformed."""


class WarehouseError(FeaturehouseError):
    """The warehouse could not be reached or a query failed."""


class OnlineStoreError(FeaturehouseError):
    """The online store could not be reached or is not in the expected state."""


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """Return ``' (did you mean 'x'?)'`` for the closest choice, or an empty string."""
    matches = difflib.get_close_matches(str(value), list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{matches[0]}'?)" if matches else ""
