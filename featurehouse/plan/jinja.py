"""Python values as Jinja literals: the one serializer for the macro calls compile and the SDK write.

Every argument of a featurehouse macro call (model files, ``dbt compile --inline`` for the SDK)
is written by :func:`jinja_literal`, never by formatting a dict or list literal by hand, so a
name with a quote, a backslash or a ``{{`` in it reaches the macro as the same string and
cannot end the literal or open a template. Text that is Jinja code on purpose (``ref('fv_x')``,
a macro call) is a :class:`JinjaCode`, which featurehouse writes itself, never from a spec.
"""

from __future__ import annotations

import math
from typing import Any

# printable ASCII that needs no escape in a single-quoted Jinja string; braces are escaped so a
# literal never contains a template delimiter ({{, {%, {#, }}, %}, #})
_PLAIN = frozenset(chr(c) for c in range(0x20, 0x7F)) - {"'", "\\", "{", "}"}
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


class JinjaCode(str):
    """Jinja expression text written by featurehouse (``ref('fv_x')``): copied, not quoted."""

    __slots__ = ()


def jinja_string(value: str) -> str:
    """A Jinja string literal of ``value``, safe for any text.

    Single-quoted when plain (so SQL's double-quoted identifiers read cleanly); otherwise
    double-quoted with backslash escapes, which Jinja's lexer decodes like Python's
    ``unicode_escape``: quotes, backslashes, control characters, braces and non-ASCII
    characters are escaped, so the literal is ASCII and holds no template delimiter.
    """
    if all(ch in _PLAIN for ch in value):
        return f"'{value}'"
    return '"' + "".join(_escape(ch) for ch in value) + '"'


def _escape(ch: str) -> str:
    if ch in _ESCAPES:
        return _ESCAPES[ch]
    if ch in _PLAIN or ch == "'":
        return ch
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def jinja_literal(value: Any) -> str:
    """``value`` (str, int, float, bool, None, list, tuple, dict with str keys, JinjaCode) as Jinja text.

    Raises TypeError for any other type and ValueError for a float that is not finite, so a
    value the macros could not read back is never written.
    """
    if isinstance(value, JinjaCode):
        return str(value)
    if isinstance(value, str):
        return jinja_string(value)
    if value is None:
        return "none"
    if isinstance(value, bool):  # before int: bool is an int
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"a macro argument must be a finite number, got {value!r}")
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(jinja_literal(item) for item in value) + "]"
    if isinstance(value, dict):
        items = []
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"a macro argument's dict keys must be strings, got {key!r}")
            items.append(f"{jinja_string(key)}: {jinja_literal(item)}")
        body = ", ".join(items)
        # a dict ending in a dict would end in '}}', which reads as the end of a template
        return "{" + body + (" }" if body.endswith("}") else "}")
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as a macro argument")


def jinja_call(name: str, *args: Any) -> JinjaCode:
    """A one-line call such as ``ref('fv_x')``; ``name`` is featurehouse's, the arguments are serialized."""
    return JinjaCode(f"{name}(" + ", ".join(jinja_literal(a) for a in args) + ")")


def macro_call(name: str, arguments: dict[str, Any]) -> JinjaCode:
    """A macro call with one keyword argument per line, as the generated models show it."""
    lines = [f"{keyword}={jinja_literal(value)}" for keyword, value in arguments.items()]
    return JinjaCode(f"{name}(\n    " + ",\n    ".join(lines) + "\n)")
