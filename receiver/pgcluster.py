"""A throwaway PostgreSQL server for tests, benchmarks and local trials (never for production).

``start_cluster()`` runs the Debian package's ``initdb`` and ``pg_ctl`` in a
new temporary directory, listening only on a Unix socket in that directory,
and returns a ``Cluster`` whose ``create_database()`` hands out fresh
``postgresql://`` URLs. When run as root, the server runs as the ``postgres``
user (``runuser``), since PostgreSQL refuses to run as root. ``stop()`` shuts
it down and deletes the directory.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from protocol.errors import UserError

SERVER_USER = "postgres"


class ClusterError(UserError):
    """PostgreSQL is not installed or the server did not start; the message says which."""


def find_bindir() -> Path | None:
    """The newest installed PostgreSQL server binaries, if any."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    directory: Path
    bindir: Path
    port: int
    _databases: int = field(default=0)

    @property
    def socket_dir(self) -> Path:
        return self.directory / "socket"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SERVER_USER}@/{database}?host={self.socket_dir}&port={self.port}"

    def create_database(self) -> str:
        """A fresh empty database; returns its URL."""
        import psycopg  # the receiver's PostgreSQL driver

        self._databases += 1
        name = f"pollbox_{os.getpid()}_{self._databases}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        _run(self, [str(self.bindir / "pg_ctl"), "-D", str(self.directory / "data"), "-m", "fast", "-w", "stop"])
        shutil.rmtree(self.directory, ignore_errors=True)


def _as_server_user(argv: list[str]) -> list[str]:
    return ["runuser", "-u", SERVER_USER, "--", *argv] if os.geteuid() == 0 else argv


def _run(cluster: Cluster, argv: list[str]) -> None:
    done = subprocess.run(_as_server_user(argv), capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        log_file = cluster.directory / "server.log"
        tail = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
        raise ClusterError(f"{Path(argv[0]).name} failed: {done.stderr.strip() or done.stdout.strip()} {tail}")


def start_cluster(durable: bool = False) -> Cluster:
    """Start a server; ``durable=False`` turns fsync off (tests), True keeps PostgreSQL's defaults (benchmarks)."""
    bindir = find_bindir()
    if bindir is None:
        raise ClusterError("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    directory = Path(tempfile.mkdtemp(prefix="pollbox-pg-"))
    cluster = Cluster(directory, bindir, _free_port())
    cluster.socket_dir.mkdir()
    if os.geteuid() == 0:
        directory.chmod(0o755)
        shutil.chown(directory, SERVER_USER)
        shutil.chown(cluster.socket_dir, SERVER_USER)
    options = f"-k {cluster.socket_dir} -p {cluster.port} -c listen_addresses='' -c max_connections=200"
    if not durable:
        options += " -F -c synchronous_commit=off -c full_page_writes=off"
    try:
        _run(cluster, [str(bindir / "initdb"), "-D", str(directory / "data"), "-A", "trust", "-U", SERVER_USER,
                       "--no-sync", "-E", "UTF8", "--locale=C"])
        _run(cluster, [str(bindir / "pg_ctl"), "-D", str(directory / "data"), "-l", str(directory / "server.log"),
                       "-o", options, "-w", "-t", "60", "start"])
    except (ClusterError, OSError, subprocess.SubprocessError) as exc:
        shutil.rmtree(directory, ignore_errors=True)
        raise ClusterError(f"the PostgreSQL test server did not start: {exc}") from None
    return cluster
