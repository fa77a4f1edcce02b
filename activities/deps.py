"""What activities need from the outside world, built once per worker process."""

from dataclasses import dataclass

from blob import BlobStore
from ledger import Ledger
from providers.registry import ProviderRegistry


@dataclass(frozen=True)
class ActivityDeps:
    ledger: Ledger
    providers: ProviderRegistry
    blobs: BlobStore
