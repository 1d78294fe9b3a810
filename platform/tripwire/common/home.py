"""Where relative paths in configs and on the command line are read from: ``TRIPWIRE_HOME``."""

from __future__ import annotations

import os

HOME_VARIABLE = "TRIPWIRE_HOME"


def from_home(path: str) -> str:
    """``path`` as Tripwire reads it: URIs and absolute paths as they are; a relative path from ``TRIPWIRE_HOME``
    (default: the current directory), made absolute. The CLI, the Serve apps and their configs all resolve
    paths here, so a path means the same wherever it is given."""
    if "://" in path or os.path.isabs(path):
        return path
    return os.path.abspath(os.path.join(os.environ.get(HOME_VARIABLE, os.getcwd()), path))
