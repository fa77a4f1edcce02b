"""Download a provider's output as a stream of chunks: the one place media URLs are fetched.

Every upstream video reaches us through :func:`stream_url`, so the policy for fetching
untrusted URLs (size limits today, address checks later) has exactly one home. Failures are
classified once, here, into "worth retrying" (the server or the network hiccupped) and "not"
(the URL is wrong, gone, or the file too big), so activities never parse status codes.
"""

from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Self
from urllib.parse import urlsplit, urlunsplit

import httpx

MIB = 1024 * 1024

_RETRYABLE_STATUSES = frozenset({408, 429})


class MediaFetchError(Exception):
    """The media could not be downloaded; ``retryable`` says whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool, status_code: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status_code = status_code

    def __reduce__(self) -> tuple[Callable[..., Self], tuple[str]]:
        # The default would call cls(message) and lose the keyword-only fields, so copying
        # or pickling the error (multiprocessing, some test tools) would fail.
        rebuild = partial(type(self), retryable=self.retryable, status_code=self.status_code)
        return rebuild, (str(self),)


async def stream_url(
    url: str,
    *,
    client: httpx.AsyncClient,
    max_bytes: int,
    chunk_size: int = MIB,
) -> AsyncIterator[bytes]:
    """Yield the body of ``GET url`` in chunks of about ``chunk_size`` bytes.

    Raises :class:`MediaFetchError` for a non-2xx answer, a transport failure or timeout
    (the ``client``'s timeouts apply), or a body over ``max_bytes``, which is refused from
    its Content-Length when announced and otherwise as soon as the count passes the limit.
    Messages name the URL without its query string, which often carries a signature.
    """
    shown = _without_query(url)
    try:
        async with client.stream("GET", url) as response:
            status = response.status_code
            if not response.is_success:
                raise MediaFetchError(
                    f"GET {shown} answered {status} {response.reason_phrase}".rstrip(),
                    retryable=status in _RETRYABLE_STATUSES or status >= 500,
                    status_code=status,
                )
            announced = _content_length(response)
            if announced is not None and announced > max_bytes:
                raise MediaFetchError(
                    f"GET {shown} announced {announced} bytes, over the {max_bytes}-byte limit",
                    retryable=False,
                    status_code=status,
                )
            received = 0
            async for chunk in response.aiter_bytes(chunk_size):
                received += len(chunk)
                if received > max_bytes:
                    raise MediaFetchError(
                        f"GET {shown} sent more than the {max_bytes}-byte limit",
                        retryable=False,
                        status_code=status,
                    )
                yield chunk
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise MediaFetchError(f"cannot fetch {shown}: {exc}", retryable=False) from exc
    except httpx.TransportError as exc:
        # Timeouts, refused connections, resets and protocol errors alike: the server may
        # well answer next time.
        raise MediaFetchError(_describe(shown, exc), retryable=True) from exc
    except httpx.RequestError as exc:
        # Undecodable bodies, redirect loops: the same URL will fail the same way.
        raise MediaFetchError(_describe(shown, exc), retryable=False) from exc


def _content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("content-length")
    # Compressed bodies are counted after decoding, so their header says nothing useful.
    if value is None or not value.isdigit() or response.headers.get("content-encoding"):
        return None
    return int(value)


def _describe(shown: str, exc: Exception) -> str:
    detail = str(exc)
    return f"GET {shown} failed: {type(exc).__name__}" + (f": {detail}" if detail else "")


def _without_query(url: str) -> str:
    """The URL minus what may be secret: user info, query and fragment."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))
