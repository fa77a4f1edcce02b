"""Everything that touches the world on a job's behalf: ledger, providers, blob storage.

Every activity is idempotent (Temporal delivers at least once) and exchanges only small
records with the workflow.
"""

from collections.abc import Callable
from typing import Any

from activities.billing import BillingActivities
from activities.deps import ActivityDeps
from activities.rehost import RehostActivities
from activities.upstream import UpstreamActivities

__all__ = [
    "ActivityDeps",
    "BillingActivities",
    "RehostActivities",
    "UpstreamActivities",
    "all_activities",
    "upstream_activities",
]


def upstream_activities(deps: ActivityDeps) -> list[Callable[..., Any]]:
    """The activities that call a provider: they run on that provider's task queue."""
    upstream = UpstreamActivities(deps)
    return [upstream.submit_upstream, upstream.await_upstream, upstream.cancel_upstream]


def all_activities(deps: ActivityDeps) -> list[Callable[..., Any]]:
    """Every activity a worker registers, bound to this process's dependencies."""
    billing = BillingActivities(deps)
    upstream = UpstreamActivities(deps)
    rehost = RehostActivities(deps)
    return [
        billing.place_hold,
        billing.capture_usage,
        billing.release_hold,
        billing.release_unconfirmed_hold,
        upstream.submit_upstream,
        upstream.await_upstream,
        upstream.cancel_upstream,
        rehost.rehost_output,
        rehost.discard_output,
    ]
