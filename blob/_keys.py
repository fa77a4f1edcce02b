"""One definition of a valid key, shared by every store.

Keys become file paths (local store), object names (S3) and URL paths, so they are limited
to characters that mean the same thing in all three and need no escaping anywhere: ASCII
letters, digits, ``-``, ``_``, ``.``, ``~``, separated by single ``/``. No segment may start
with ``.``, which rules out ``.``/``..`` traversal and keeps the local store's hidden
in-progress files unreachable through any key.
"""

import re

MAX_KEY_BYTES = 1024

_SEGMENT = r"[A-Za-z0-9_~-][A-Za-z0-9._~-]*"
_KEY = re.compile(rf"{_SEGMENT}(?:/{_SEGMENT})*")


def check_key(key: str) -> str:
    """Return ``key`` unchanged if it is valid; raise ``ValueError`` otherwise."""
    if len(key) > MAX_KEY_BYTES or not _KEY.fullmatch(key):
        raise ValueError(
            f"invalid blob key {key!r}: use 1-{MAX_KEY_BYTES} characters from "
            "[A-Za-z0-9._~-] in '/'-separated segments that do not start with '.'"
        )
    return key


def join_url(base_url: str, key: str) -> str:
    return base_url.rstrip("/") + "/" + check_key(key)
