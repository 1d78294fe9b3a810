"""A throwaway PostgreSQL server for the tests and the review-store benchmark.

``postgres_server()`` runs ``initdb`` into a fresh temporary directory, starts the server on a free port
(TCP on 127.0.0.1, its socket in the same directory), waits until it accepts connections and yields
``postgresql://tripwire@127.0.0.1:PORT/postgres``; at exit it stops the server (``pg_ctl stop -m
immediate``) and removes the directory. The server refuses to run as root, so as root it runs as the
unprivileged user ``pgtest`` (created if missing); otherwise as the current user.

Where the server binaries are absent, ``find_postgres_bin()`` is None and callers skip with ``SKIP_REASON``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

SKIP_REASON = "PostgreSQL server not installed: run `make postgres` (apt-get install postgresql)"
PG_USER = "pgtest"  # the OS user the server runs as when we are root
DB_USER = "tripwire"  # the database superuser initdb creates
START_TIMEOUT_S = 30.0


def find_postgres_bin() -> Path | None:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres`` (the newest Debian version, or
    ``$TRIPWIRE_PG_BIN``, or ``initdb`` on PATH), or None when the server is not installed."""
    candidates = []
    if os.environ.get("TRIPWIRE_PG_BIN"):
        candidates.append(Path(os.environ["TRIPWIRE_PG_BIN"]))

    def version(path: str) -> tuple:
        part = Path(path).parent.parent.name
        return tuple(int(x) for x in part.split(".") if x.isdigit())

    candidates += [Path(p).parent for p in sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version,
                                                  reverse=True)]
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    for directory in candidates:
        if all(os.access(directory / name, os.X_OK) for name in ("initdb", "pg_ctl", "postgres")):
            return directory
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ensure_user() -> None:
    import pwd

    try:
        pwd.getpwnam(PG_USER)
        return
    except KeyError:
        pass
    if shutil.which("useradd"):
        command = ["useradd", "-M", "-s", "/bin/sh", PG_USER]
    elif shutil.which("adduser"):
        command = ["adduser", "-D", "-H", PG_USER]  # busybox
    else:
        raise RuntimeError(f"running as root and cannot create the user {PG_USER!r} (no useradd/adduser)")
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        try:  # created concurrently by another process
            pwd.getpwnam(PG_USER)
        except KeyError:
            raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip()}") from None


def _as_server_user(args: list[str]) -> list[str]:
    """``args`` run as the unprivileged server user when we are root (``runuser``, else ``su``)."""
    if os.geteuid() != 0:
        return args
    if shutil.which("runuser"):
        return ["runuser", "-u", PG_USER, "--", *args]
    import shlex

    return ["su", PG_USER, "-s", "/bin/sh", "-c", shlex.join(args)]


def _run(args: list[str], what: str, timeout: float = 120.0) -> None:
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    done = subprocess.run(_as_server_user(args), capture_output=True, text=True, timeout=timeout, env=env,
                          cwd="/")
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed (rc {done.returncode}): {(done.stdout + done.stderr)[-2000:]}")


def _log_tail(directory: Path, chars: int = 2000) -> str:
    try:
        return (directory / "log").read_text(errors="replace")[-chars:]
    except OSError as exc:
        return f"(no server log: {exc})"


def _wait_ready(url: str, directory: Path, timeout: float) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(url, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return
        except psycopg.OperationalError as exc:
            last = exc
            time.sleep(0.2)
    raise RuntimeError(f"PostgreSQL did not accept connections within {timeout:.0f}s ({last});"
                       f" server log tail:\n{_log_tail(directory)}")


@contextlib.contextmanager
def postgres_server(fast: bool = False, timeout: float = START_TIMEOUT_S) -> Iterator[str]:
    """Start a throwaway server; yield its URL (database ``postgres``, superuser ``tripwire``, no password).

    ``fast`` turns ``fsync`` and ``full_page_writes`` off (for tests: they never crash the server
    itself, only its clients); the benchmark keeps the durable defaults.
    """
    bin_dir = find_postgres_bin()
    if bin_dir is None:
        raise RuntimeError(SKIP_REASON)
    root = os.geteuid() == 0
    if root:
        _ensure_user()
    # Not under pytest's tmp_path: that is 0700 root's, and the server user must reach its directory.
    directory = Path(tempfile.mkdtemp(prefix="tripwire-pg-", dir="/tmp"))
    data = directory / "data"
    started = False
    try:
        if root:
            shutil.chown(directory, user=PG_USER, group=None)
            import pwd

            shutil.chown(directory, group=pwd.getpwnam(PG_USER).pw_gid)
        _run([str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", DB_USER, "-E", "UTF8",
              "--locale=C", "--no-sync"], "initdb")
        settings = "-c listen_addresses=127.0.0.1 -c max_connections=200 -c shared_buffers=64MB"
        if fast:
            settings += " -c fsync=off -c full_page_writes=off"
        error: Exception | None = None
        for _ in range(3):  # a free port may be taken between probing and binding
            port = _free_port()
            try:
                _run([str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-t", str(int(timeout)), "-l",
                      str(directory / "log"), "-o", f"-p {port} -k {directory} {settings}", "start"],
                     "pg_ctl start", timeout=timeout + 10)
                started = True
                break
            except RuntimeError as exc:
                error = RuntimeError(f"{exc}\nserver log tail:\n{_log_tail(directory)}")
        if not started:
            raise error  # type: ignore[misc]
        url = f"postgresql://{DB_USER}@127.0.0.1:{port}/postgres"
        _wait_ready(url, directory, timeout)
        yield url
    finally:
        if started:
            with contextlib.suppress(Exception):
                _run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"], "pg_ctl stop",
                     timeout=60)
        shutil.rmtree(directory, ignore_errors=True)


def create_database(url: str, name: str) -> str:
    """``CREATE DATABASE name`` on the server at ``url``; the new database's URL."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return url.rsplit("/", 1)[0] + "/" + name


if __name__ == "__main__":  # a smoke check: start, connect, stop
    import psycopg

    if find_postgres_bin() is None:
        raise SystemExit(SKIP_REASON)
    t0 = time.perf_counter()
    with postgres_server(fast=True) as server_url:
        t1 = time.perf_counter()
        db = create_database(server_url, "smoke")
        with psycopg.connect(db) as conn:
            print(server_url, conn.execute("SELECT version()").fetchone()[0])
    print(f"start {t1 - t0:.1f}s, total {time.perf_counter() - t0:.1f}s")
