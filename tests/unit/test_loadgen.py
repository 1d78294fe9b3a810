"""The benchmarks' lean HTTP client against a real HTTP server (the standard library's)."""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bench.loadgen import HttpError, KeepAliveConnection, encode_bodies


class Handler(BaseHTTPRequestHandler):
    """Echoes the JSON body with the connection it came on; the path picks how the answer is framed."""

    protocol_version = "HTTP/1.1"
    connections: set[int] = set()

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Handler.connections.add(self.client_address[1])
        answer = json.dumps({"echo": json.loads(body), "path": self.path}).encode()
        status = 422 if self.path == "/bad" else 200
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if self.path == "/chunked":
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for start in range(0, len(answer), 7):
                piece = answer[start:start + 7]
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
            return
        if self.path == "/close":
            self.send_header("Connection", "close")
            self.close_connection = True
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_keeps_one_connection_reads_both_framings_and_reconnects_after_close(server_url):
    items = [{"text": "hello", "n": 1}, {"text": "ünïcode", "n": 2}]
    bodies = encode_bodies(items)

    async def run():
        connection = KeepAliveConnection(server_url)
        answers = [await connection.post(path, body)
                   for path, body in [("/plain", bodies[0]), ("/chunked", bodies[1]), ("/bad", bodies[0])]]
        reused = len(Handler.connections)
        answers.append(await connection.post("/close", bodies[1]))
        answers.append(await connection.post("/plain", bodies[0]))  # a fresh connection after the close
        await connection.close()
        return answers, reused

    Handler.connections.clear()
    answers, connections_before_close = asyncio.run(run())
    assert connections_before_close == 1
    assert len(Handler.connections) == 2
    assert [status for status, _ in answers] == [200, 200, 422, 200, 200]
    decoded = [json.loads(body) for _, body in answers]
    assert [d["echo"] for d in decoded] == [items[0], items[1], items[0], items[1], items[0]]
    assert [d["path"] for d in decoded] == ["/plain", "/chunked", "/bad", "/close", "/plain"]


def test_rejects_what_it_cannot_speak():
    with pytest.raises(ValueError, match="only http://"):
        KeepAliveConnection("https://example.com")

    async def not_http():
        async def answer_garbage(reader, writer):
            await reader.read(100)
            writer.write(b"SSH-2.0-OpenSSH\r\n\r\n")
            await writer.drain()
            writer.close()

        garbage = await asyncio.start_server(answer_garbage, "127.0.0.1", 0)
        port = garbage.sockets[0].getsockname()[1]
        connection = KeepAliveConnection(f"http://127.0.0.1:{port}")
        try:
            await connection.post("/", b"{}")
        finally:
            garbage.close()
            assert connection.writer is None  # a failed request never leaves its stream for the next one

    with pytest.raises(HttpError, match="not an HTTP status line"):
        asyncio.run(not_http())
