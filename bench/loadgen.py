"""A lean HTTP/1.1 load generator for the serving benchmarks.

On the 2-core benchmark machine the client shares the cores with the graph it measures, so whatever CPU
the client spends per request is taken from the graph. ``httpx`` spent 2.2-5.6 ms of CPU per request there
(bench/RESULTS.md), a fifth or more of the graph's own. This client does the least a real HTTP client
must: one keep-alive connection per concurrent caller, the request bodies encoded once up front, and a
response parser for ``Content-Length`` and chunked bodies. It speaks real HTTP over real sockets; it is
not a general client (no TLS, redirects, or proxies).
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlsplit


class HttpError(RuntimeError):
    """The server's answer could not be read as HTTP/1.1."""


class KeepAliveConnection:
    """One persistent HTTP/1.1 connection; requests on it go one at a time.

    Args:
        url: the server's base URL, ``http://host:port``.
    """

    def __init__(self, url: str):
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"only http://host:port URLs are supported, got {url!r}")
        self.host, self.port = parts.hostname, parts.port or 80
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, content_type: str = "application/json") -> tuple[int, bytes]:
        """Sends one POST and returns its status code and body; reconnects when the server closed."""
        try:
            return await self._post(path, body, content_type)
        except BaseException:
            # A request cut short (timeout, reset, bad answer) leaves the stream mid-response: never reuse it.
            await self.close()
            raise

    async def _post(self, path: str, body: bytes, content_type: str) -> tuple[int, bytes]:
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        self.writer.write(head + body)
        await self.writer.drain()
        status, headers = await self._read_head()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            payload = await self._read_chunked()
        elif "content-length" in headers:
            payload = await self.reader.readexactly(int(headers["content-length"]))
        else:  # no length: the body runs to the end of the connection
            payload = await self.reader.read()
            await self.close()
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, payload

    async def _read_head(self) -> tuple[int, dict[str, str]]:
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        try:
            status = int(lines[0].split(" ", 2)[1])
        except (IndexError, ValueError):
            raise HttpError(f"not an HTTP status line: {lines[0]!r}") from None
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        return status, headers

    async def _read_chunked(self) -> bytes:
        chunks = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")  # the blank line after the last chunk (no trailers sent)
                return b"".join(chunks)
            chunks.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
        self.reader = self.writer = None


def encode_bodies(items: list[dict]) -> list[bytes]:
    """The JSON request bodies, encoded once so the load loop spends no CPU on them."""
    return [json.dumps(item).encode() for item in items]
