"""Requests-per-minute per account, counted in the ledger database (shared by every replica)
in fixed one-minute windows. The jobs-in-flight limit is enforced inside the hold itself."""

from datetime import UTC, datetime

from api.auth import Principal
from api.services import Services
from kyma_video.errors import RateLimited


async def enforce_request_rate(principal: Principal, services: Services) -> None:
    limit = services.limits_for(principal.tier).requests_per_minute
    now = datetime.now(UTC)
    window = now.replace(second=0, microsecond=0)
    count = await services.ledger.count_request(principal.account_id, window)
    if count > limit:
        raise RateLimited(
            f"more than {limit} requests this minute for tier {principal.tier!r}",
            retry_after_seconds=max(1, 60 - now.second),
        )
