"""How far each long item of a running scan has got. An hour-long episode is minutes of work, so items counted as
they finish would say nothing for that long: the model actor writes ``<out>/progress/<item>.json`` after each
batch of windows (removed when the item is done), and the driver says what changed every ``progress_every_s``.
The scan's output folder is already where its tasks write (the quarantine), so this needs nothing more."""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Callable

import fsspec

from tripwire.common.progress import clock

PROGRESS = "progress"


def progress_line(item_id: str, done_s: float, total_s: float | None) -> str:
    if total_s:
        return f"[scan] {item_id}: {clock(done_s)} of {clock(total_s)} scored ({100 * min(done_s / total_s, 1):.0f}%)"
    return f"[scan] {item_id}: {clock(done_s)} scored"


class ItemProgress:
    """Written by a model actor for one long item (``out``: the scan's output folder)."""

    def __init__(self, out: str, item_id: str):
        self.fs, folder = fsspec.core.url_to_fs(f"{out.rstrip('/')}/{PROGRESS}")
        self.fs.makedirs(folder, exist_ok=True)
        self.path = f"{folder}/{hashlib.sha256(item_id.encode()).hexdigest()[:24]}.json"
        self.item_id = item_id

    def update(self, done_s: float, total_s: float | None) -> None:
        with self.fs.open(self.path, "w") as handle:
            json.dump({"id": self.item_id, "done_s": done_s, "total_s": total_s}, handle)

    def finish(self) -> None:
        self.fs.rm(self.path) if self.fs.exists(self.path) else None


def read_progress(out: str) -> dict[str, tuple[float, float | None]]:
    """The long items in progress: ``id -> (seconds done, seconds in all or None)``."""
    fs, folder = fsspec.core.url_to_fs(f"{out.rstrip('/')}/{PROGRESS}")
    items = {}
    for path in fs.glob(f"{folder}/*.json") if fs.exists(folder) else []:
        try:
            with fs.open(path, "r") as handle:
                data = json.load(handle)
            items[data["id"]] = (float(data["done_s"]), data["total_s"])
        except (OSError, ValueError, KeyError):
            continue  # being written or just removed
    return items


class ProgressWatch:
    """A thread that says each long item's progress when it changed, every ``every_s`` seconds, until ``close``."""

    def __init__(self, out: str, say: Callable[[str], None], every_s: float):
        self.out = out
        self.say = say
        self.every_s = every_s
        self.seen: dict[str, tuple[float, float | None]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="scan-progress", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(self.every_s):
            items = read_progress(self.out)
            for item_id, (done_s, total_s) in sorted(items.items()):
                if self.seen.get(item_id) != (done_s, total_s):
                    self.say(progress_line(item_id, done_s, total_s))
            self.seen = items

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
