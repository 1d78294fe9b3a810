"""Where a job's progress lines go: the pipelines print them; left to the library, they are logged."""

from __future__ import annotations

from typing import Callable

Say = Callable[[str], None]


def clock(seconds: float) -> str:
    """A time into media as people write it: ``h:mm:ss``, or ``m:ss`` under an hour."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"
