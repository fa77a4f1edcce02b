"""Blobs as files in a directory, for the single-machine stack; the API serves them.

Atomicity comes from the filesystem: bytes go to a hidden temporary file next to the target
and ``os.replace`` swaps it in, so a reader (the API's file route) sees the old file or the
new one, never a prefix of either. The temporary file is fsynced first so a crash right
after the swap cannot leave an empty file under a published key. Blocking file calls run in
worker threads so a large write never stalls the event loop.

A process killed mid-write (SIGKILL, OOM, power loss) cannot remove its temporary file, so the
next write of the same key (the retried rehost) removes whatever earlier writers left for it.
"""

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

from blob._keys import check_key, join_url
from blob._store import BlobNotFound


class LocalBlobStore:
    def __init__(self, root: Path, public_base_url: str) -> None:
        self._root = Path(root).resolve()
        self._public_base_url = public_base_url

    def path_for(self, key: str) -> Path:
        """The file that holds ``key``; always inside the root, since keys cannot escape it."""
        return self._root.joinpath(*check_key(key).split("/"))

    def public_url(self, key: str) -> str:
        return join_url(self._public_base_url, key)

    async def put_stream(
        self, key: str, chunks: AsyncIterator[bytes], *, content_type: str
    ) -> None:
        # content_type is not recorded: the API derives it from the extension it serves.
        target = self.path_for(key)
        await asyncio.to_thread(_remove_abandoned_temps, target)
        file, temp_path = await asyncio.to_thread(_open_temp, target)
        try:
            try:
                async for chunk in chunks:
                    if chunk:
                        await asyncio.to_thread(file.write, chunk)
                await asyncio.to_thread(_seal, file)
            finally:
                await asyncio.to_thread(file.close)
            await asyncio.to_thread(os.replace, temp_path, target)
        except BaseException:
            await asyncio.shield(asyncio.to_thread(temp_path.unlink, missing_ok=True))
            raise

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self.path_for(key).is_file)

    async def read(self, key: str) -> bytes:
        try:
            return await asyncio.to_thread(self.path_for(key).read_bytes)
        except FileNotFoundError:
            raise BlobNotFound(key) from None

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.path_for(key).unlink, missing_ok=True)


_TEMP_SUFFIX = ".part"


def _temp_prefix(target: Path) -> str:
    return f".{target.name}."


def _open_temp(target: Path) -> tuple[BinaryIO, Path]:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=_temp_prefix(target), suffix=_TEMP_SUFFIX)
    return os.fdopen(fd, "wb"), Path(name)


def _remove_abandoned_temps(target: Path) -> None:
    """Delete temporary files of earlier writes of ``target`` (``.<name>.<random>.part``).

    Keys never start with ``.``, so only temporaries match; the random part has no ``.``, so
    the temporaries of a longer key (``<name>.x``) do not. A writer still running on a dead
    attempt loses its file and fails, which is what should happen to it.
    """
    prefix = _temp_prefix(target)
    try:
        names = os.listdir(target.parent)
    except FileNotFoundError:
        return
    for name in names:
        middle = name[len(prefix) : -len(_TEMP_SUFFIX)]
        if name.startswith(prefix) and name.endswith(_TEMP_SUFFIX) and middle and "." not in middle:
            (target.parent / name).unlink(missing_ok=True)


def _seal(file: BinaryIO) -> None:
    """Make the bytes durable and the file readable like any other (mkstemp creates 0600)."""
    file.flush()
    os.fchmod(file.fileno(), 0o644)
    os.fsync(file.fileno())
