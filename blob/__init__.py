"""Where rehosted videos live: the store seam, its two backends, and the verified ingest."""

from blob._errors import InvalidVideo, VideoTooLarge
from blob._factory import from_settings
from blob._ingest import StoredVideo, ingest_video
from blob._local import LocalBlobStore
from blob._s3 import S3BlobStore
from blob._store import BlobNotFound, BlobStore
from blob.mp4 import Mp4Info, Mp4Probe, NotAVideo

__all__ = [
    "BlobNotFound",
    "BlobStore",
    "InvalidVideo",
    "LocalBlobStore",
    "Mp4Info",
    "Mp4Probe",
    "NotAVideo",
    "S3BlobStore",
    "StoredVideo",
    "VideoTooLarge",
    "from_settings",
    "ingest_video",
]
