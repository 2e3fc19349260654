"""The output columns of a feature selection, and the name clashes load_repo and requests
reject."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from featurehouse.errors import RequestError

if TYPE_CHECKING:
    from featurehouse.spec.model import FeatureView
    from featurehouse.spec.repo import ViewSelection


@dataclass(frozen=True)
class JoinPlan:
    """What one point-in-time join needs: the views, their features and output names."""

    selections: tuple[ViewSelection, ...]
    full_feature_names: bool

    def output_names(self) -> list[str]:
        """The output column names of the features, in order (prefixed with ``full_feature_names``)."""
        return [self.prefix(s.view) + f for s in self.selections for f in s.features]

    def prefix(self, view: FeatureView) -> str:
        """The prefix of ``view``'s output columns: ``view__`` with full feature names, else none."""
        return f"{view.name}__" if self.full_feature_names else ""


@dataclass(frozen=True)
class OutputClash:
    """Output ``index`` (of ``plan.output_names()``), ``feature`` of ``view``, has the name of one from ``earlier``."""

    index: int
    feature: str
    view: str
    earlier: str


def output_clash(plan: JoinPlan) -> OutputClash | None:
    """The first output whose name another view's output already has, ignoring case
    (warehouses and DataFrames would see one column twice)."""
    seen: dict[str, str] = {}
    index = 0
    for selection in plan.selections:
        for feature in selection.features:
            name = (plan.prefix(selection.view) + feature).lower()
            if name in seen:
                return OutputClash(index, feature, selection.view.name, seen[name])
            seen[name] = selection.view.name
            index += 1
    return None


def check_output_names(plan: JoinPlan) -> None:
    """Two views offering the same feature name need full_feature_names."""
    clash = output_clash(plan)
    if clash is not None:
        raise RequestError(
            f"feature '{clash.feature}' is requested from both '{clash.earlier}' and '{clash.view}'; "
            "ask for full_feature_names=True to get 'view__feature' columns"
        )
