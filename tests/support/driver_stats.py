"""The driver statistics specs that tests and benches share, written once.

``specs_yaml`` is Feast's quickstart view (conv_rate, acc_rate, avg_daily_trips per driver, over
a parquet file with ``event_timestamp`` and ``created``): the sync, online-read and server
benches build their repos from it. ``MINIMAL_SPECS`` is the one-feature repo the CLI tests
compile without data. Benches import this module as the tests do (``bench/`` puts ``tests/``
on ``sys.path``).
"""

from __future__ import annotations

# (name, dtype) of the view's features, in schema order; the data files carry these columns
FEATURES = (("conv_rate", "float32"), ("acc_rate", "float32"), ("avg_daily_trips", "int64"))


def feature_refs(view: str = "driver_hourly_stats") -> list[str]:
    """``view:feature`` for every feature, as get_online_features and the server take them."""
    return [f"{view}:{name}" for name, _ in FEATURES]


def specs_yaml(view: str = "driver_hourly_stats", source: str = "driver_stats",
               path: str = "data/driver_stats.parquet", ttl: str = "7d", online: bool | None = None) -> str:
    """The entity ``driver``, the file source ``source`` at ``path`` and the feature view ``view``.

    ``online`` None leaves the view's default.
    """
    schema = "".join(f"      - {{name: {name}, dtype: {dtype}}}\n" for name, dtype in FEATURES)
    return (
        "entities:\n"
        "  - {name: driver, join_keys: [driver_id], value_type: int64}\n"
        "sources:\n"
        f"  - name: {source}\n"
        f"    path: {path}\n"
        "    timestamp_field: event_timestamp\n"
        "    created_timestamp_column: created\n"
        "feature_views:\n"
        f"  - name: {view}\n"
        "    entities: [driver]\n"
        f"    source: {source}\n"
        f"    ttl: {ttl}\n"
        "    schema:\n"
        f"{schema}"
        + ("" if online is None else f"    online: {'true' if online else 'false'}\n")
    )


MINIMAL_SPECS = """\
entities:
  - {name: driver, join_keys: [driver_id]}
sources:
  - {name: stats, table: raw.stats, timestamp_field: event_timestamp}
feature_views:
  - name: driver_stats
    entities: [driver]
    source: stats
    schema:
      - {name: conv_rate, dtype: float64}
"""
