"""What every online store shares: a view's layout, its snapshot as Arrow, fingerprints, sync state.

A snapshot (the ``online_<view>`` dbt model) is normalised to one Arrow schema per view:
join keys and features cast to their dtypes, ``event_timestamp`` and ``created_timestamp``
as naive UTC microseconds. Each row gets a 64-bit fingerprint (a hash of the whole row);
the sync state keeps the fingerprints of the snapshot last synced, so an incremental
sync writes only the rows that are new or changed since (``featurehouse.sync.snapshot``).
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from featurehouse.errors import OnlineStoreError
from featurehouse.spec.model import CREATED_TIMESTAMP, EVENT_TIMESTAMP

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from featurehouse.spec.model import FeatureView
    from featurehouse.spec.repo import FeatureRepo

# Part of every view's signature: raising it makes the next sync of every store a full refresh.
# 2: SQLite keeps NaN (as the text 'NaN') and writes bytes and timestamps in arrays by the rules in
# docs/store-layouts.md.
STATE_FORMAT = 2
# A feature view may not take these names: the stores keep their own bookkeeping under them.
STATE_TABLE = "_featurehouse_sync_state"
PUSH_TABLE = "_featurehouse_push_state"  # the last push per view (featurehouse.online.push)
# ``origin`` of the state a push writes for a view no sync wrote yet: the view becomes readable,
# and the next sync writes conditionally (never a full refresh over the pushed rows)
PUSHED_ONLY = "(pushed, not synced yet)"


def feature_dtypes(view: FeatureView) -> dict[str, str]:
    """Each feature's dtype, the training sets' own (an aggregation's count is int64, the rest float64)."""
    from featurehouse.plan.joins import feature_dtypes as training_dtypes

    return training_dtypes(view)


@dataclass(frozen=True)
class ViewLayout:
    """How one feature view is laid out in an online store."""

    name: str
    join_keys: tuple[str, ...]
    key_dtypes: tuple[str, ...]
    features: tuple[str, ...]
    dtypes: tuple[str, ...]
    ttl: int  # seconds; 0 = unlimited
    # the feature with a vector index: (name, dimensions, metric); None: the view has none
    vector: tuple[str, int, str] | None = None

    @classmethod
    def of(cls, repo: FeatureRepo, view: FeatureView) -> ViewLayout:
        """The layout of ``view`` in ``repo``."""
        keys = repo.join_keys(view)
        dtypes = feature_dtypes(view)
        return cls(
            name=view.name,
            join_keys=tuple(keys),
            key_dtypes=tuple(repo.join_key_dtype(view, k) for k in keys),
            features=tuple(view.feature_names),
            dtypes=tuple(dtypes[f] for f in view.feature_names),
            ttl=view.ttl,
            vector=next(
                ((f.name, f.vector.dimensions, f.vector.metric) for f in view.features if f.vector is not None), None
            ),
        )

    @property
    def model(self) -> str:
        """The dbt model sync reads this view's snapshot from."""
        from featurehouse.plan.joins import online_model

        return online_model(self.name)

    @property
    def columns(self) -> list[str]:
        """The stored columns: join keys, event and created timestamps, features."""
        return [*self.join_keys, EVENT_TIMESTAMP, CREATED_TIMESTAMP, *self.features]

    @property
    def signature(self) -> str:
        """Changes whenever the stored columns change; a changed layout forces a full refresh."""
        parts: list[object] = [STATE_FORMAT, self.join_keys, self.key_dtypes, self.features, self.dtypes]
        if self.vector is not None:  # a view without one keeps the signature it always had
            parts.append(self.vector)
        text = json.dumps(parts)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def dtype(self, feature: str) -> str:
        """The dtype of ``feature``."""
        return self.dtypes[self.features.index(feature)]


def storage_arrow_type(dtype: str) -> pa.DataType:
    """The Arrow type a dtype is normalised to before writing (timestamps: naive UTC µs)."""
    import pyarrow as pa

    from featurehouse.spec.types import arrow_type

    if dtype == "timestamp":
        return pa.timestamp("us")
    if dtype.startswith("array<"):
        return pa.list_(storage_arrow_type(dtype[len("array<") : -1]))
    return arrow_type(dtype)


def normalise(table: pa.Table, layout: ViewLayout) -> pa.Table:
    """The snapshot with exactly the layout's columns, cast to their storage types."""
    import pyarrow as pa

    from featurehouse.errors import OnlineStoreError

    wanted = [
        *zip(layout.join_keys, layout.key_dtypes),
        (EVENT_TIMESTAMP, "timestamp"),
        (CREATED_TIMESTAMP, "timestamp"),
        *zip(layout.features, layout.dtypes),
    ]
    columns = []
    for name, dtype in wanted:
        if name not in table.column_names:
            raise OnlineStoreError(
                f"the model {layout.model} has no column '{name}'; run 'featurehouse compile' and 'dbt build'"
            )
        column = table.column(name)
        target = storage_arrow_type(dtype)
        if pa.types.is_timestamp(column.type) and column.type.tz is not None:
            column = column.cast(pa.timestamp("us", tz="UTC")).cast(pa.timestamp("us"))
        if column.type != target:
            try:
                column = column.cast(target)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
                raise OnlineStoreError(
                    f"column '{name}' of {layout.model} is {column.type}, which does not convert to {dtype}: {error}"
                ) from None
        columns.append(_one_array(column))
    return pa.table(columns, names=[n for n, _ in wanted])


def _one_array(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    import pyarrow as pa

    if not isinstance(column, pa.ChunkedArray):
        return column
    if column.num_chunks == 0:  # (combine_chunks() and pa.array([]) of nothing import pandas: 0.3 s)
        return pa.nulls(0, type=column.type)
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


@dataclass
class SyncState:
    """What the store holds for one view: when it was last synced, and how to tell what changed since.

    ``hashes``: the row fingerprints of the snapshot last synced (models without a
    ``snapshot_built_at`` column); ``watermark``: the newest ``snapshot_built_at`` that sync saw,
    as the warehouse prints it (models with one); ``origin``: the warehouse table they came
    from, so that a sync from another target rebuilds the view. See ``featurehouse.sync.snapshot``.
    """

    view: str
    signature: str
    synced_at: datetime
    rows: int
    hashes: np.ndarray = field(repr=False)  # uint64 row hashes of the last synced snapshot
    watermark: str | None = None
    origin: str | None = None  # the warehouse table synced from (Warehouse.origin)
    # feature -> dtype the store holds (None: a state written before this was recorded)
    features: dict[str, str] | None = None

    def to_bytes(self) -> bytes:
        """The state as stored: a versioned JSON header, then the row hashes (little-endian uint64)."""
        header = json.dumps(
            {
                "format": STATE_FORMAT,
                "view": self.view,
                "signature": self.signature,
                "synced_at": self.synced_at.isoformat(),
                "rows": self.rows,
                "watermark": self.watermark,
                "origin": self.origin,
                "features": None if self.features is None else [[k, v] for k, v in self.features.items()],
            }
        ).encode()
        return b"FHS" + struct.pack("<BI", STATE_FORMAT, len(header)) + header + self.hashes.astype("<u8").tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, view: str = "?") -> SyncState | None:
        """The state, or None when it was written by an incompatible version (a full refresh follows).

        Raises CorruptStateError (one sentence naming ``view``) when the bytes are damaged.
        """
        import numpy as np

        data = bytes(data)
        if data[:3] != b"FHS":
            if len(data) < 8 and b"FHS".startswith(data[:3]) and data:
                raise CorruptStateError(view, "it is cut short")
            return None
        if len(data) < 8:
            raise CorruptStateError(view, "it is cut short")
        version, length = struct.unpack("<BI", data[3:8])
        if version != STATE_FORMAT:
            return None
        try:
            if len(data) < 8 + length or (len(data) - 8 - length) % 8:
                raise ValueError("it is cut short")
            header = json.loads(data[8 : 8 + length])
            hashes = np.frombuffer(memoryview(data)[8 + length :], dtype="<u8").astype(np.uint64)
            state = cls(
                str(header["view"]),
                str(header["signature"]),
                datetime.fromisoformat(header["synced_at"]),
                int(header["rows"]),
                hashes,
                header.get("watermark"),
                header.get("origin"),
            )
            if header.get("features") is not None:
                state.features = {str(k): str(v) for k, v in header["features"]}
        except (ValueError, TypeError, KeyError, UnicodeDecodeError) as error:  # JSONDecodeError is a ValueError
            raise CorruptStateError(view, str(error).splitlines()[0] or type(error).__name__) from error
        return state


class CorruptStateError(OnlineStoreError):
    """A view's sync state in the online store does not decode; ``--full-refresh`` rebuilds it."""

    def __init__(self, view: str, problem: str):
        self.view = view
        super().__init__(
            f"the sync state of feature view '{view}' in the online store is damaged ({problem}); "
            f"run 'featurehouse sync --full-refresh --views {view}' to rebuild the view and its state"
        )


def pushed_state(layout: ViewLayout, at: datetime) -> SyncState:
    """The state a push writes for a view the store holds no state of (see ``PUSHED_ONLY``)."""
    import numpy as np

    features = dict(zip(layout.features, layout.dtypes))
    return SyncState(layout.name, layout.signature, at, 0, np.zeros(0, dtype=np.uint64), None, PUSHED_ONLY, features)


def check_push_target(layout: ViewLayout, state: SyncState | None, description: str) -> None:
    """Refuse a push into a view the store holds by another definition (its columns differ)."""
    if state is not None and state.signature != layout.signature:
        raise OnlineStoreError(
            f"{description} holds feature view '{layout.name}' as synced by another definition of it; "
            f"run 'featurehouse sync --views {layout.name}' first, then push again (nothing was written)"
        )


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)
