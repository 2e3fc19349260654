"""Request-time features as SQL: the checked expression trees of ``featurehouse.spec.request_views``
written for a dialect with sqlglot, with the semantics pinned so that DuckDB, Postgres and the
online evaluator (``featurehouse.online.request_features``) agree:

- every input is cast to its family (int64 as BIGINT, floats as DOUBLE) before any operation;
- ``/`` is float division, and a zero divisor gives NULL: ``CAST(a AS DOUBLE) / NULLIF(CAST(b AS DOUBLE), 0)``;
- ``%`` takes integers and a zero divisor gives NULL; an integer and a float meet as DOUBLE;
- float literals are written as ``CAST('0.1' AS DOUBLE)`` (parsed like Python parses them);
- the result is cast to the declared dtype.

See docs/decisions/0025-request-expression-semantics.md.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from featurehouse.compile.types import SCALAR_TYPES
from featurehouse.spec.request_views import BOOL, FLOAT, INT, NULL, STRING, TIMESTAMP, Node, RequestJoinPlan

if TYPE_CHECKING:
    from featurehouse.spec.request_views import RequestFeaturePlan

PIT_ALIAS = "__fh_pit"
_FAMILY_TYPES = {
    INT: exp.DataType.Type.BIGINT,
    FLOAT: exp.DataType.Type.DOUBLE,
    STRING: exp.DataType.Type.TEXT,
    BOOL: exp.DataType.Type.BOOLEAN,
    TIMESTAMP: exp.DataType.Type.TIMESTAMP,
}
_COMPARISONS: dict[str, type[exp.Binary]] = {
    "=": exp.EQ,
    "<>": exp.NEQ,
    "<": exp.LT,
    "<=": exp.LTE,
    ">": exp.GT,
    ">=": exp.GTE,
}
_ARITHMETIC: dict[str, type[exp.Binary]] = {"add": exp.Add, "sub": exp.Sub, "mul": exp.Mul}


def _cast(node: exp.Expr, kind: Any) -> exp.Expr:
    return exp.Cast(this=node, to=exp.DataType(this=kind))


def _as(node: Node, sql: exp.Expr, family: str) -> exp.Expr:
    """``sql`` (the value of ``node``) in ``family``: an integer meeting a float becomes DOUBLE."""
    if family == FLOAT and node.type in (INT, NULL):
        return _cast(sql, exp.DataType.Type.DOUBLE)
    return sql


def expression_sql(tree: Node, column: Callable[[Node], exp.Expr]) -> exp.Expr:
    """The SQL of a checked tree; ``column`` gives the column of a field or ref node."""

    def write(node: Node) -> exp.Expr:
        op, args = node.op, node.args
        if op in ("field", "ref"):
            return _cast(column(node), _FAMILY_TYPES[node.type])
        if op == "lit":
            if node.type == INT:
                return _cast(exp.Literal.number(node.value), exp.DataType.Type.BIGINT)
            if node.type == FLOAT:
                return _cast(exp.Literal.string(repr(node.value)), exp.DataType.Type.DOUBLE)
            if node.type == STRING:
                return exp.Literal.string(node.value)
            if node.type == BOOL:
                return exp.true() if node.value else exp.false()
            return exp.null()
        if op == "neg":
            return exp.Neg(this=exp.paren(write(args[0])))
        if op in _ARITHMETIC:
            left, right = (_as(a, write(a), node.type) for a in args)
            return exp.paren(_ARITHMETIC[op](this=left, expression=right))
        if op == "div":
            left = _cast(write(args[0]), exp.DataType.Type.DOUBLE)
            zero = _cast(exp.Literal.number(0), exp.DataType.Type.DOUBLE)
            right = exp.Nullif(this=_cast(write(args[1]), exp.DataType.Type.DOUBLE), expression=zero)
            return exp.paren(exp.Div(this=left, expression=right))
        if op == "mod":
            right = exp.Nullif(this=write(args[1]), expression=_cast(exp.Literal.number(0), exp.DataType.Type.BIGINT))
            return exp.paren(exp.Mod(this=write(args[0]), expression=right))
        if op == "cmp":
            family = FLOAT if {a.type for a in args} == {INT, FLOAT} else INT
            left, right = (_as(a, write(a), family) for a in args)
            return exp.paren(_COMPARISONS[node.value](this=left, expression=right))
        if op in ("and", "or"):
            kind = exp.And if op == "and" else exp.Or
            return exp.paren(kind(this=write(args[0]), expression=write(args[1])))
        if op == "not":
            return exp.Not(this=exp.paren(write(args[0])))
        if op == "isnull":
            return exp.paren(exp.Is(this=write(args[0]), expression=exp.null()))
        if op == "case":
            ifs = [
                exp.If(this=write(args[i]), true=_as(args[i + 1], write(args[i + 1]), node.type))
                for i in range(0, len(args) - 1, 2)
            ]
            default = _as(args[-1], write(args[-1]), node.type)
            return exp.Case(ifs=ifs, default=default)
        if op in ("coalesce", "least", "greatest"):
            parts = [_as(a, write(a), node.type) for a in args]
            if op == "coalesce":
                return exp.Coalesce(this=parts[0], expressions=parts[1:])
            # ignore_nulls: NULLs are skipped (Postgres' and DuckDB's own rule); without it sqlglot
            # writes a CASE that gives NULL when any argument is NULL
            extreme = exp.Least if op == "least" else exp.Greatest
            return extreme(this=parts[0], expressions=parts[1:], ignore_nulls=True)
        if op == "nullif":
            left, right = (_as(a, write(a), node.type) for a in args)
            return exp.Nullif(this=left, expression=right)
        if op == "abs":
            return exp.Abs(this=write(args[0]))
        if op in ("floor", "ceil"):
            rounding = exp.Floor if op == "floor" else exp.Ceil
            return rounding(this=_cast(write(args[0]), exp.DataType.Type.DOUBLE))
        if op == "length":
            return _cast(exp.Length(this=write(args[0])), exp.DataType.Type.BIGINT)
        if op == "concat":
            return exp.paren(exp.DPipe(this=write(args[0]), expression=write(args[1])))
        if op == "cast":
            return _cast(write(args[0]), _FAMILY_TYPES[node.value])
        raise AssertionError(f"unknown operation {op}")  # the checker builds only the ones above

    return write(tree)


def feature_sql(feature: RequestFeaturePlan, column: Callable[[Node], exp.Expr]) -> exp.Expr:
    """A request feature's SQL, cast to its declared dtype."""
    return _cast(expression_sql(feature.tree, column), SCALAR_TYPES[feature.dtype])


def wrap_join(
    plan: RequestJoinPlan,
    inner: str,
    dialect: str,
    passthrough: list[str] | None = None,
    order_column: str | None = None,
) -> str:
    """``select <spine columns>, <features>, <request features> from (<inner>) as __fh_pit``.

    ``inner`` is the point-in-time join (SQL, or the Jinja call in a training-set model);
    ``passthrough`` the spine columns to keep (None: every column of the join, which then also
    carries the features the expressions read); ``order_column`` keeps the spine's order.
    """

    def column(node: Node) -> exp.Expr:
        name = node.value if node.op == "field" else plan.column(*node.value)
        return exp.column(name, table=PIT_ALIAS, quoted=True)

    if passthrough is None:  # a training-set model: every column of the join, and the renamed features
        selects: list[exp.Expr] = [exp.Column(this=exp.Star(), table=exp.to_identifier(PIT_ALIAS, quoted=True))]
        renamed = [(inner, name) for inner, name in plan.visible_columns() if inner != name]
    else:
        selects = [exp.column(c, table=PIT_ALIAS, quoted=True) for c in passthrough]
        renamed = plan.visible_columns()
    selects += [exp.column(inner, table=PIT_ALIAS, quoted=True).as_(name, quoted=True) for inner, name in renamed]
    for selection in plan.requests:
        for name in selection.features:
            output = plan.request_prefix(selection) + name
            selects.append(feature_sql(selection.plan.feature(name), column).as_(output, quoted=True))
    token = f"__fh_join_{secrets.token_hex(8)}__"
    query = exp.select(*selects).from_(exp.to_table(token).as_(PIT_ALIAS, quoted=True))
    if order_column is not None:
        query = query.order_by(exp.column(order_column, table=PIT_ALIAS, quoted=True))
    sql = query.sql(dialect=dialect, pretty=True, identify=True)
    quoted = exp.to_identifier(token, quoted=True).sql(dialect=dialect)
    return sql.replace(quoted, "(\n" + inner + "\n)", 1)
