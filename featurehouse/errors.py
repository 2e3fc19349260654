"""The error hierarchy: every user mistake becomes one of these, with one clear sentence.

The CLI prints ``Error: <message>`` and exits 1; only ``--debug`` shows a traceback.
"""

from __future__ import annotations

import difflib
import reprlib
from collections.abc import Iterable


class FeaturehouseError(Exception):
    """Base of every error featurehouse raises on purpose."""


class SpecError(FeaturehouseError):
    """A spec or config file is invalid; carries the file and line it comes from."""

    def __init__(self, message: str, file: str | None = None, line: int | None = None):
        # one line whatever the spec held: a value echoed with a newline or a terminal escape
        # must not forge further lines, and a huge one must not flood the terminal
        message = one_line(message)
        self.message = message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 3] + "..."
        self.file = file
        self.line = line
        where = f"{file}:{line}: " if file and line else (f"{file}: " if file else "")
        super().__init__(f"{where}{self.message}")


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


MAX_EXCERPT = 60
MAX_MESSAGE = 1000


def one_line(text: str) -> str:
    """``text`` with control characters (newlines, terminal escapes) written as escapes."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def excerpt(value: object, limit: int = MAX_EXCERPT) -> str:
    """A short, quoted, escaped excerpt of user input for an error message: ``'abc...'``.

    repr() escapes quotes, newlines and control characters; anything longer than ``limit``
    is cut, so a message never carries more than a glimpse of a bad (or secret) value.
    """
    # reprlib: a nested or self-referencing value is shown in part, never expanded in full
    text = repr(value) if isinstance(value, (str, bytes, int, float)) else reprlib.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """Return ``' (did you mean 'x'?)'`` for the closest choice, or an empty string."""
    matches = difflib.get_close_matches(str(value), list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{one_line(matches[0])}'?)" if matches else ""
