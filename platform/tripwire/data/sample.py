"""The sample contract: one item to score or train on, and the manifests that list them.

A manifest row (JSONL or Parquet)::

    {"id": "item-1", "text": "optional text",
     "image": "images/item-1.png",            # fsspec URI, relative to the manifest, or inline bytes,
     "audio": "data:audio/wav;base64,UklGR...", # or a data: URI carrying base64 bytes
     "video": null,
     "labels": {"hate": 0, "violence": 1},      # category -> 0/1; a missing category is unknown
     "meta": {"language": "en", "market": "DE", "content_type": "post", "source": "upload"}}
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import logging
import posixpath
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping, Sequence
from urllib.parse import unquote

import fsspec

from tripwire.data.media import MediaError, MediaLimits

logger = logging.getLogger(__name__)

MEDIA_FIELDS = ("image", "audio", "video")
META_FIELDS = ("language", "market", "content_type", "source")
MediaRef = str | bytes

MODALITIES = ("text", "image", "audio", "video")


@dataclass
class Sample:
    """One item: any subset of text, image, audio and video, with optional labels and metadata."""

    id: str
    text: str | None = None
    image: MediaRef | None = None
    audio: MediaRef | None = None
    video: MediaRef | None = None
    labels: dict[str, int] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def modalities(self) -> list[str]:
        return [m for m in MODALITIES if getattr(self, m) is not None]

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "Sample":
        """Builds a sample from a manifest row, checking the contract; raises ValueError naming the field."""
        if not isinstance(row, dict):
            raise ValueError(f"row: expected an object, got {type(row).__name__}")
        unknown = sorted(set(row) - {"id", "text", *MEDIA_FIELDS, "labels", "meta"})
        if unknown:
            raise ValueError(f"row: unknown field(s) {unknown}")
        sample_id = row.get("id")
        if sample_id is None or str(sample_id) == "":
            raise ValueError("id: missing")
        text = row.get("text")
        if text is not None and not isinstance(text, str):
            raise ValueError(f"text: expected a string, got {type(text).__name__}")
        media = {}
        for name in MEDIA_FIELDS:
            value = row.get(name)
            if value is not None and not isinstance(value, (str, bytes)):
                raise ValueError(f"{name}: expected a URI string or bytes, got {type(value).__name__}")
            media[name] = value if value not in ("", b"") else None
        labels = {}
        for category, value in (row.get("labels") or {}).items():
            if value is None:
                continue  # unknown
            if value not in (0, 1) or isinstance(value, float) and not value.is_integer():
                raise ValueError(f"labels.{category}: expected 0 or 1, got {value!r}")
            labels[category] = int(value)
        meta = {k: v for k, v in (row.get("meta") or {}).items() if v is not None}
        return cls(id=str(sample_id), text=text, labels=labels, meta=meta, **media)

    def to_row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "text": self.text,
            **{m: getattr(self, m) for m in MEDIA_FIELDS},
            "labels": dict(self.labels),
            "meta": dict(self.meta),
        }


def resolve_uri(ref: str, base_uri: str | None) -> str:
    """Resolves a media URI relative to the manifest's folder; absolute paths and URLs pass through."""
    if "://" in ref or ref.startswith("/") or not base_uri:
        return ref
    if "://" in base_uri:
        scheme, rest = base_uri.split("://", 1)
        return f"{scheme}://{posixpath.normpath(posixpath.join(rest, ref))}"
    return posixpath.normpath(posixpath.join(base_uri, ref))


def uri_allowed(uri: str, allow_list: Sequence[str]) -> bool:
    """Whether a request may make the service read ``uri``: it starts with an allow-listed prefix (end
    prefixes with ``/``) and has no ``.`` or ``..`` path segment, plain or percent-encoded, since
    ``file:///srv/media/../secrets`` passes a prefix check for ``file:///srv/media/`` and then resolves
    outside it. fsspec's chained URIs (``a::b``) are refused too: the part after ``::`` would be read."""
    _, separator, path = uri.partition("://")
    if not separator or "::" in uri:
        return False
    for candidate in (path, unquote(path)):
        if any(segment in (".", "..") for segment in candidate.split("/")):
            return False
    return any(uri.startswith(prefix) for prefix in allow_list)


def decode_base64(field_name: str, value: str, max_bytes: int | None = None) -> bytes:
    """Base64 text, optionally a ``data:...;base64,`` URI, -> bytes; a MediaError naming the field otherwise.

    With ``max_bytes``, text that would decode to more is refused as ``too_large`` by its length, before
    anything is decoded (base64 carries 3 bytes in 4 characters).
    """
    if value.startswith("data:"):
        header, _, value = value.partition(",")
        if not header.endswith(";base64"):
            raise MediaError(field_name, "bad_data_uri", "data: URIs must be base64 encoded")
    if max_bytes is not None:
        decoded = len(value) // 4 * 3 - value[-2:].count("=") if len(value) % 4 == 0 else len(value) * 3 // 4
        if decoded > max_bytes:
            raise MediaError(field_name, "too_large", f"{len(value)} characters of base64 decode to about "
                                                      f"{decoded} bytes > limit {max_bytes}", size=decoded)
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MediaError(field_name, "invalid_base64", f"not valid base64: {exc}") from exc
    if max_bytes is not None and len(data) > max_bytes:  # never, for valid base64; cheap to make sure
        raise MediaError(field_name, "too_large", f"{len(data)} bytes > limit {max_bytes}", size=len(data))
    return data


def request_body(sample: Sample, base_uri: str | None) -> dict[str, Any]:
    """The ``POST /v1/moderate`` JSON for a sample, media inlined as base64 (demo, tests, benchmarks)."""
    body: dict[str, Any] = {"id": sample.id}
    if sample.text is not None:
        body["text"] = sample.text
    if sample.meta.get("market"):
        body["market"] = sample.meta["market"]
    for name in MEDIA_FIELDS:
        ref = getattr(sample, name)
        if ref is not None:
            body[name] = base64.b64encode(read_media(name, ref, base_uri)).decode()
    return body


def read_media(field_name: str, ref: MediaRef, base_uri: str | None, max_bytes: int | None = None) -> bytes:
    """Returns the bytes of a media reference: inline bytes, a ``data:`` URI, or an fsspec URI.

    Never holds more than ``max_bytes`` (default: the field's :class:`~tripwire.data.media.MediaLimits` default,
    so no caller reads unbounded): a file whose size the store reports is refused before it is opened, any
    other read stops one byte past the limit, and a ``data:`` URI is judged by its length before decoding.
    Callers with a configured limit (the preprocessing config's ``limits``) pass it.

    Raises:
        MediaError: the reference cannot be read (missing file, bad base64) or is over the limit
            (``too_large``, naming the size and the limit), naming the field.
    """
    limit = MediaLimits().max_bytes(field_name) if max_bytes is None else max_bytes
    if isinstance(ref, bytes):
        if len(ref) > limit:
            raise MediaError(field_name, "too_large", f"{len(ref)} bytes > limit {limit}", size=len(ref))
        return ref
    if ref.startswith("data:"):
        return decode_base64(field_name, ref, limit)
    uri = resolve_uri(ref, base_uri)
    with open_media(field_name, uri, limit) as handle:
        with _read_errors(field_name, uri):
            data = handle.read(limit + 1)
    if len(data) > limit:
        raise MediaError(field_name, "too_large", f"{uri} is more than {limit} bytes (limit {limit})")
    return data


def open_media(field_name: str, uri: str, limit: int):
    """A binary file object on the media at ``uri`` (opened, nothing read), refused where the store reports more
    than ``limit`` bytes.

    Raises:
        MediaError: naming the field: ``missing_file``, ``unreadable`` or ``too_large``.
    """
    with _read_errors(field_name, uri):
        fs, path = fsspec.core.url_to_fs(uri)
        size = _reported_size(fs, path)
        if size is not None and size > limit:
            raise MediaError(field_name, "too_large", f"{uri} is {size} bytes > limit {limit}", size=size)
        return fs.open(path, "rb")


@contextlib.contextmanager
def _read_errors(field_name: str, uri: str):
    """A store's errors reading ``uri`` as MediaErrors naming the field."""
    try:
        yield
    except MediaError:
        raise
    except FileNotFoundError as exc:
        raise MediaError(field_name, "missing_file", f"{uri} does not exist") from exc
    except (OSError, ValueError) as exc:
        raise MediaError(field_name, "unreadable", f"{uri}: {exc}") from exc


def _reported_size(fs, path: str) -> int | None:
    """The file's size as the store reports it, or None where it reports none (the capped read decides).

    Raises:
        FileNotFoundError: the store says there is no such file.
    """
    try:
        size = fs.info(path).get("size")
    except FileNotFoundError:
        raise
    except Exception as exc:  # a store without a usable stat (some HTTP servers): the capped read still bounds it
        logger.debug("no size for %s: %s", path, exc)
        return None
    return int(size) if isinstance(size, (int, float)) else None


def manifest_base(manifest_uri: str) -> str:
    """The folder that relative media URIs in a manifest are resolved against."""
    return posixpath.dirname(str(manifest_uri))


def _data_uri(data: bytes) -> str:
    return "data:application/octet-stream;base64," + base64.b64encode(data).decode()


def write_manifest(samples: Iterable[Sample], uri: str) -> int:
    """Writes samples as JSONL (``.jsonl``) or Parquet (``.parquet``); returns the row count."""
    rows = [s.to_row() for s in samples]
    if str(uri).endswith(".parquet"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        for row in rows:
            row["labels"] = json.dumps(row["labels"])
            row["meta"] = json.dumps(row["meta"])
        with fsspec.open(uri, "wb") as handle:
            pq.write_table(pa.Table.from_pylist(rows), handle)
    else:
        with fsspec.open(uri, "w", encoding="utf-8") as handle:
            for row in rows:
                for name in MEDIA_FIELDS:  # JSON has no bytes: inline media travels as a data: URI
                    if isinstance(row[name], bytes):
                        row[name] = _data_uri(row[name])
                handle.write(json.dumps(row, sort_keys=True) + "\n")
    return len(rows)


def normalize_row(row: dict[str, Any]) -> dict[str, Any]:
    """Undoes storage quirks: Parquet stores labels/meta as JSON text; Arrow fills absent keys with None."""
    row = dict(row)
    for name in ("labels", "meta"):
        if isinstance(row.get(name), str):
            row[name] = json.loads(row[name])
    return row


def to_records(rows: list[dict[str, Any]] | list[str]) -> dict[str, list[str]]:
    """Manifest rows (dicts from Parquet, or raw JSONL lines) -> ``{"id": [...], "record": [json, ...]}``.

    Ray Data carries each row as one JSON string so every manifest has the same two-column schema: no
    type inference across blocks (pandas turns missing values into NaN), and inline bytes survive as
    ``data:`` URIs. A line that is not JSON keeps its text and an empty id; it is quarantined downstream.
    """
    ids, records = [], []
    for row in rows:
        if isinstance(row, str):
            try:
                parsed = json.loads(row)
                ids.append(str(parsed.get("id", "")) if isinstance(parsed, dict) else "")
                records.append(row)
            except json.JSONDecodeError:
                ids.append("")
                records.append(row)
            continue
        row = normalize_row(row)
        for name in MEDIA_FIELDS:
            if isinstance(row.get(name), bytes):
                row[name] = _data_uri(row[name])
        ids.append(str(row.get("id", "")))
        records.append(json.dumps(row))
    return {"id": ids, "record": records}


def read_manifest(uri: str) -> Iterator[Sample]:
    """Streams the samples of a JSONL or Parquet manifest (for small jobs and tests; Ray Data reads big ones)."""
    if str(uri).endswith(".parquet"):
        import pyarrow.parquet as pq

        with fsspec.open(uri, "rb") as handle:
            for batch in pq.ParquetFile(handle).iter_batches(batch_size=1024):
                for row in batch.to_pylist():
                    yield Sample.from_row(normalize_row(row))
    else:
        with fsspec.open(uri, "r", encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, 1):
                if line.strip():
                    try:
                        yield Sample.from_row(json.loads(line))
                    except (ValueError, json.JSONDecodeError) as exc:
                        raise ValueError(f"{uri}:{line_no}: {exc}") from exc


def fingerprint_file(uri: str) -> str:
    """SHA-256 of a file's bytes: the training-data fingerprint recorded in checkpoints."""
    digest = hashlib.sha256()
    with fsspec.open(uri, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def content_digest(text: str | None, media: Mapping[str, bytes | None]) -> str:
    """sha256 of an item's content: its text and each media field's bytes (not its id, labels or meta).

    The one content hash of the platform: the review export de-duplicates by it and the decision log
    records it (so a logged decision can be matched to content without keeping the content)."""
    return _combine(text, {name: hashlib.sha256(data).digest() for name, data in media.items() if data})


def content_digest_of(text: str | None, refs: Mapping[str, MediaRef | None], base_uri: str | None) -> str:
    """:func:`content_digest` of an item whose media are references: each file is hashed as a stream, so
    media of any size are hashed without being held (no byte limit applies: hashing decides nothing)."""
    return _combine(text, {name: media_sha256(name, ref, base_uri) for name, ref in refs.items() if ref})


def media_sha256(field_name: str, ref: MediaRef, base_uri: str | None, chunk_bytes: int = 1 << 20) -> bytes:
    """The sha256 digest of a media reference's bytes, read in chunks of ``chunk_bytes``.

    Raises:
        MediaError: the reference cannot be read, naming the field.
    """
    if isinstance(ref, bytes):
        return hashlib.sha256(ref).digest()
    if ref.startswith("data:"):  # inline: already in memory as text
        return hashlib.sha256(decode_base64(field_name, ref, len(ref))).digest()
    uri = resolve_uri(ref, base_uri)
    digest = hashlib.sha256()
    try:
        with fsspec.open(uri, "rb") as handle:
            for chunk in iter(lambda: handle.read(chunk_bytes), b""):
                digest.update(chunk)
    except FileNotFoundError as exc:
        raise MediaError(field_name, "missing_file", f"{uri} does not exist") from exc
    except (OSError, ValueError) as exc:
        raise MediaError(field_name, "unreadable", f"{uri}: {exc}") from exc
    return digest.digest()


def _combine(text: str | None, media_digests: Mapping[str, bytes]) -> str:
    digest = hashlib.sha256()
    digest.update(b"text\0" + (text or "").encode("utf-8") + b"\0")
    for name in MEDIA_FIELDS:
        digest.update(name.encode() + b"\0")
        if media_digests.get(name):
            digest.update(media_digests[name])
    return digest.hexdigest()
