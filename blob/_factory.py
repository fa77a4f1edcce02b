"""Build the configured store, so no other module branches on the backend."""

from blob._local import LocalBlobStore
from blob._s3 import S3BlobStore
from blob._store import BlobStore
from kyma_video.settings import BlobBackend, Settings


def from_settings(settings: Settings) -> BlobStore:
    """The store named by ``settings.blob_backend``.

    ``KYMA_S3_PREFIX`` lives in the S3 store (its ``key_prefix``), not in callers' keys:
    callers pass the same key, e.g. ``<job_id>.mp4``, to either backend, and the S3 object
    (and its public URL) is ``<prefix><key>``. The local store has a directory of its own
    and uses no prefix.
    """
    if settings.blob_backend is BlobBackend.S3:
        if not settings.s3_bucket:
            raise ValueError("KYMA_S3_BUCKET is required when KYMA_BLOB_BACKEND=s3")
        return S3BlobStore(
            bucket=settings.s3_bucket,
            public_base_url=settings.blob_public_base_url,
            endpoint_url=settings.s3_endpoint_url or None,
            region=settings.s3_region,
            key_prefix=settings.s3_prefix,
        )
    return LocalBlobStore(settings.resolved_blob_dir, settings.blob_public_base_url)
