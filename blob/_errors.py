"""Why a video was refused. Kept apart so :mod:`blob.mp4` and the ingest path share one base.

Every :class:`InvalidVideo` is a verdict on the bytes, not on the network: fetching the same
URL again yields the same refusal, so callers treat it as final (``invalid_output``) rather
than retrying.
"""


class InvalidVideo(Exception):
    """The upstream's bytes will not be stored: not a video, or too large."""


class VideoTooLarge(InvalidVideo):
    """More bytes arrived than the configured maximum; the rest was never read."""
