"""The storage seam: where rehosted videos live, behind one small async interface.

The interface is shaped by the one guarantee rehosting needs: an object exists under a key
only if every byte arrived and the source raised nothing, so a URL we hand out never points
at half a video, and an ingest that rejects its input (not a video, too large) leaves nothing
behind. Sources are async iterators so a download can flow straight into storage without
ever being whole in memory or on local disk.
"""

from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable


class BlobNotFound(LookupError):
    """``read`` of a key that holds no object."""


@runtime_checkable
class BlobStore(Protocol):
    async def put_stream(
        self, key: str, chunks: AsyncIterator[bytes], *, content_type: str
    ) -> None:
        """Store everything ``chunks`` yields under ``key``, replacing any earlier object.

        The object becomes visible only after ``chunks`` is exhausted without error. If
        ``chunks`` raises, at any point including after its last chunk, the exception
        propagates unchanged and neither a new object nor partial data is left behind (an
        object stored earlier under ``key`` is kept).
        """
        ...

    def public_url(self, key: str) -> str:
        """The stable URL customers fetch the object from."""
        ...

    async def exists(self, key: str) -> bool: ...

    async def read(self, key: str) -> bytes:
        """The whole object in memory: for tests and small files only. Raises BlobNotFound."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the object; deleting a missing key is not an error."""
        ...
