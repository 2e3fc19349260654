"""Online reads: the latest synced features of entities (OnlineReader), and the
audit that compares the online store with the warehouse. Imports sync and below."""

from featurehouse.online.reader import (
    NOT_FOUND,
    OUTSIDE_MAX_AGE,
    PRESENT,
    OnlineReader,
    OnlineResponse,
    get_online_features,
)

__all__ = ["NOT_FOUND", "OUTSIDE_MAX_AGE", "PRESENT", "OnlineReader", "OnlineResponse", "get_online_features"]
