"""Durations as written in specs: ``90s``, ``30m``, ``12h``, ``1d``, ``2w``; ``0`` means unlimited."""

from __future__ import annotations

import re

from featurehouse.errors import excerpt

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PATTERN = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
EXPECTED = "a duration such as 90s, 30m, 12h, 1d or 2w"


_WORDS = re.compile(r"^\s*(\d+)\s*(sec|second|min|minute|hour|day|week)s?\s*$", re.IGNORECASE)
_FRACTION = re.compile(r"^\s*(\d*\.\d+)\s*([smhdw])\s*$", re.IGNORECASE)


def parse_duration(value: object) -> int:
    """Seconds in ``value``; raises ValueError with the expected form for anything else."""
    if isinstance(value, bool):
        raise ValueError(f"expected {EXPECTED}, got {excerpt(value)}")
    if isinstance(value, int) and value == 0:
        return 0
    if isinstance(value, str):
        if value.strip() == "0":
            return 0
        match = _PATTERN.match(value)
        if match:
            return int(match.group(1)) * _UNITS[match.group(2)]
    # `ttl:` with nothing after it is None to YAML; "got None" would read like Python
    shown = "nothing" if value is None else excerpt(value)
    hint = _hint(value)  # a hint that repeats a huge value is no help
    raise ValueError(f"expected {EXPECTED}, got {shown}{hint if len(hint) <= 40 else ''}")


def _hint(value: object) -> str:
    """``(did you mean '1d'?)`` for ``1 day``, and ``'3600s'`` for a bare number of seconds."""
    if isinstance(value, int) and value > 0:
        return f" (did you mean '{format_duration(value)}'?)"
    if isinstance(value, str):
        if value.strip().isdigit() and int(value) > 0:
            return f" (did you mean '{format_duration(int(value))}'?)"
        match = _WORDS.match(value)
        if match:
            return f" (did you mean '{match.group(1)}{match.group(2)[0].lower()}'?)"
        if _PATTERN.match(value.lower()):  # 1D, 12H
            return f" (did you mean '{value.strip().lower()}'?)"
        match = _FRACTION.match(value)  # 1.5h is 90m
        if match:
            seconds = float(match.group(1)) * _UNITS[match.group(2).lower()]
            if seconds >= 1 and seconds == int(seconds):
                return f" (did you mean '{format_duration(int(seconds))}'?)"
        if value.strip().startswith("-"):
            return " (a duration cannot be negative)"
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
        return " (a duration cannot be negative)"
    return ""


def format_duration(seconds: int) -> str:
    """The shortest spec spelling of ``seconds`` (``0`` for unlimited)."""
    if seconds == 0:
        return "0"
    for unit in ("w", "d", "h", "m"):
        if seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"
