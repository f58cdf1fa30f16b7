"""A real PostgreSQL server for tests, started from Debian's binaries in a temporary folder.

`running_postgres()` runs `initdb` and `pg_ctl start` on a free 127.0.0.1 port (trust authentication,
a private socket folder, no fsync), yields a `PostgresServer`, and stops the server and removes its
folder afterwards. PostgreSQL refuses to run as root, so under root the server runs as the `postgres`
user (`runuser -u postgres --`). Where the binaries (`/usr/lib/postgresql/*/bin/initdb`) or that user
are missing, the tests that need the server are skipped with the reason; a server that is there but
fails to start fails them, with its log.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

POSTGRES_ROOT = Path("/usr/lib/postgresql")
SERVER_USER = "postgres"
START_TIMEOUT_S = 60


def postgres_bin_dir() -> Path | None:
    """The newest installed PostgreSQL's `bin` folder, or `None` when there is none."""
    found = [path.parent for path in POSTGRES_ROOT.glob("*/bin/initdb") if (path.parent / "pg_ctl").exists()]
    return max(found, key=lambda folder: float(folder.parent.name), default=None) if found else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class PostgresServer:
    """A running server; `create_database()` gives each test a fresh, empty database."""

    port: int
    user: str = SERVER_USER

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL of one database (psycopg 3, trust authentication: no password)."""
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """Creates an empty database with a unique name and returns its URL."""
        import psycopg

        name = f"test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user={self.user} dbname=postgres", autocommit=True
        ) as db:
            db.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _runner() -> tuple[list[str], pwd.struct_passwd | None]:
    """The command prefix that runs a program as the server's user (root cannot run PostgreSQL)."""
    if os.geteuid() != 0:
        return [], None
    try:
        account = pwd.getpwnam(SERVER_USER)
    except KeyError:
        pytest.skip(f"PostgreSQL cannot run as root and there is no {SERVER_USER!r} user to run it as.")
    if shutil.which("runuser"):
        return ["runuser", "-u", SERVER_USER, "--"], account
    return ["su", SERVER_USER, "-s", "/bin/sh", "-c", '"$0" "$@"'], account


def _run(command: list[str], log: Path | None = None) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=START_TIMEOUT_S)
    if result.returncode != 0:
        server_log = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
        pytest.fail(
            f"PostgreSQL did not start: {' '.join(command)} exited with {result.returncode}.\n"
            f"{result.stdout[-2000:]}{result.stderr[-2000:]}\n{server_log}"
        )


@contextlib.contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """Starts a throw-away PostgreSQL server, yields it, and stops and removes it afterwards."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        pytest.skip(
            f"PostgreSQL's server binaries are not installed ({POSTGRES_ROOT}/*/bin/initdb is missing): "
            "`apt-get install postgresql` to run the tests against it."
        )
    prefix, account = _runner()
    root = Path(tempfile.mkdtemp(prefix="fashion-postgres-"))
    data, sockets, log = root / "data", root / "sockets", root / "server.log"
    sockets.mkdir()
    if account is not None:  # the server's user must own its folders and reach them
        root.chmod(0o755)
        for path in (root, sockets):
            os.chown(path, account.pw_uid, account.pw_gid)
    port = _free_port()
    try:
        _run([*prefix, str(bin_dir / "initdb"), "-D", str(data), "-U", SERVER_USER, "-A", "trust", "-E", "UTF8",
              "--no-sync"])  # fmt: skip
        options = f"-p {port} -h 127.0.0.1 -k {sockets} -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        _run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "start"], log)
        yield PostgresServer(port=port)
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                           capture_output=True, timeout=START_TIMEOUT_S)  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)
