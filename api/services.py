"""What the API talks to, opened once per process and shared by every request."""

from dataclasses import dataclass

from blob import BlobStore
from blob import from_settings as blob_store_from_settings
from kyma_video.client import JobClient, connect
from kyma_video.settings import Settings, TierLimits
from ledger import Ledger, migrate


@dataclass(frozen=True)
class Services:
    settings: Settings
    ledger: Ledger
    jobs: JobClient
    blobs: BlobStore

    def limits_for(self, tier: str) -> TierLimits:
        """A tier's limits; an unknown tier gets the ``default`` tier's (or the built-in)."""
        tiers = self.settings.tiers
        return tiers.get(tier) or tiers.get("default") or TierLimits()


async def open_services(settings: Settings) -> Services:
    url = settings.resolved_database_url
    if url.startswith("sqlite"):
        # The embedded ledger migrates itself; PostgreSQL is migrated as a deploy step.
        await migrate(url)
    client = await connect(settings, lazy=True)
    return Services(
        settings=settings,
        ledger=Ledger.from_url(url),
        jobs=JobClient.from_settings(client, settings),
        blobs=blob_store_from_settings(settings),
    )
