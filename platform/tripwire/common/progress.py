"""Where a job's progress lines go: the pipelines print them; left to the library, they are logged."""

from __future__ import annotations

from typing import Callable

Say = Callable[[str], None]
