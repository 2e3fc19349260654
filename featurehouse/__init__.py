"""featurehouse: a warehouse-native, dbt-first feature store.

``from featurehouse import FeatureStore`` is the SDK entry point (Feast's method names).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["FeatureStore", "__version__"]

if TYPE_CHECKING:
    from featurehouse.sdk.store import FeatureStore


def __getattr__(name: str) -> Any:
    # imported on first use so that `featurehouse --help` does not pay for the SDK's imports
    if name == "FeatureStore":
        from featurehouse.sdk.store import FeatureStore

        return FeatureStore
    raise AttributeError(f"module 'featurehouse' has no attribute {name!r}")
