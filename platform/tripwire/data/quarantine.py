"""Quarantine: rows a job could not use, kept with their reason instead of stopping the job.

A quarantine is a folder (any fsspec URI) of Parquet files, each a list of rows
``{"id": str, "reason": str, "detail": str}``. Writers append files (many actors, many epochs); readers
see each id once. Typical use::

    write_quarantine(qdir, [{"id": "item-7", "reason": "corrupt", "detail": "PNG: bad header"}])
    rows = check_quarantine(qdir, num_rows=2400, max_fraction=0.1)   # raises when too many
    quarantine_reasons(rows)                                          # {"corrupt": 1}
"""

from __future__ import annotations

import uuid

QUARANTINE_FIELDS = ("id", "reason", "detail")


class QuarantineLimitExceeded(RuntimeError):
    """More of a job's rows were bad than ``data.max_quarantine_fraction`` allows."""


def write_quarantine(quarantine_dir: str, rows: list[dict[str, str]]) -> None:
    """Adds ``rows`` (each with exactly the keys id, reason, detail) to the quarantine; none is a no-op."""
    if not rows:
        return
    import fsspec
    import pyarrow as pa
    import pyarrow.parquet as pq

    for row in rows:
        if set(row) != set(QUARANTINE_FIELDS):
            raise ValueError(f"quarantine row: keys {sorted(row)}, expected {list(QUARANTINE_FIELDS)}")
    fs, path = fsspec.core.url_to_fs(quarantine_dir)
    fs.makedirs(path, exist_ok=True)
    table = pa.Table.from_pylist([{k: str(row[k]) for k in QUARANTINE_FIELDS} for row in rows])
    with fs.open(f"{path}/part-{uuid.uuid4().hex}.parquet", "wb") as handle:
        pq.write_table(table, handle)


def read_quarantine(quarantine_dir: str) -> list[dict[str, str]]:
    """All quarantined rows, one per id (a streaming job re-quarantines the same rows each epoch)."""
    import fsspec

    from tripwire.storage.parquet import read_table

    fs, path = fsspec.core.url_to_fs(quarantine_dir)
    if not fs.exists(path):
        return []
    seen: dict[str, dict[str, str]] = {}
    for file in sorted(fs.glob(f"{path}/*.parquet")):
        with fs.open(file, "rb") as handle:
            for row in read_table(handle).to_pylist():
                seen.setdefault(row["id"], row)
    return list(seen.values())


def quarantine_reasons(rows: list[dict[str, str]]) -> dict[str, int]:
    """Quarantined rows counted by reason, reasons in name order."""
    reasons: dict[str, int] = {}
    for row in rows:
        reasons[row["reason"]] = reasons.get(row["reason"], 0) + 1
    return dict(sorted(reasons.items()))


def check_quarantine(quarantine_dir: str, num_rows: int, max_fraction: float) -> list[dict[str, str]]:
    """The quarantined rows; raises :class:`QuarantineLimitExceeded` when they are too many.

    Raises:
        QuarantineLimitExceeded: the message gives the count, the limit, the reasons and where the rows are.
    """
    rows = read_quarantine(quarantine_dir)
    if num_rows and len(rows) / num_rows > max_fraction:
        raise QuarantineLimitExceeded(
            f"{len(rows)} of {num_rows} rows ({len(rows) / num_rows:.1%}) were quarantined, over "
            f"data.max_quarantine_fraction={max_fraction:.1%}; reasons {quarantine_reasons(rows)}; "
            f"rows and details in {quarantine_dir}")
    return rows


def over_quarantine_limit(quarantine_dir: str | None, num_rows: int, max_fraction: float) -> bool:
    """:func:`check_quarantine` as a yes/no, for a loop that stops early and lets the driver raise."""
    if not quarantine_dir or not num_rows:
        return False
    try:
        check_quarantine(quarantine_dir, num_rows, max_fraction)
    except QuarantineLimitExceeded:
        return True
    return False
