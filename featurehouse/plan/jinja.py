"""Python strings as Jinja string literals, for the macro calls compile and the SDK write."""

from __future__ import annotations

import json


def jinja_string(value: str) -> str:
    """A Jinja string literal; single-quoted so SQL's double-quoted identifiers read cleanly."""
    if "'" not in value and "\\" not in value:
        return f"'{value}'"
    return json.dumps(value)
