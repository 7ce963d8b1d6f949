"""A throwaway PostgreSQL cluster for tests and benchmarks: ``initdb`` in a temporary folder, one server on a
Unix socket in that folder, stopped and removed by :meth:`ThrowawayCluster.stop`.

The server refuses to run as root: when this process is root, initdb and the server run as the ``postgres``
user (Debian's package creates it). The binaries are looked up in ``MOTORCADE_PG_BIN`` (only there when it
is set), else in ``/usr/lib/postgresql/<version>/bin`` (newest first), then on ``PATH``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

INSTALL_HINT = ("install the PostgreSQL server binaries (Debian/Ubuntu: apt-get install postgresql; "
                "macOS: brew install postgresql@15), or point MOTORCADE_PG_BIN at the folder holding initdb")


def find_bin_dir() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``, or None when PostgreSQL is not installed."""
    explicit = os.environ.get("MOTORCADE_PG_BIN")
    if explicit:  # only there (an empty or missing folder: PostgreSQL counts as not installed)
        folder = Path(explicit)
        return folder if (folder / "initdb").exists() and (folder / "pg_ctl").exists() else None
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                         key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
                         reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(Path(on_path).parent))
    for folder in candidates:
        if folder and (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ThrowawayCluster:
    """One PostgreSQL server in a temporary folder. ``url(db)`` names a database on it."""

    user = "motorcade"

    # Small and safe for a test run: nothing needs to survive a crash, and many test processes share a machine.
    SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off", "max_connections": "200",
                "shared_buffers": "128MB"}

    def __init__(self, bin_dir: Path, settings: dict[str, str] | None = None):
        """``settings``: server settings (``postgres -c name=value``) over :attr:`SETTINGS`."""
        self.bin_dir = bin_dir
        self.settings = {**self.SETTINGS, **(settings or {})}
        self.root = Path(tempfile.mkdtemp(prefix="motorcade-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self._runas: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            try:
                self._runas = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError("running as root and there is no 'postgres' user to run the server as "
                                   "(PostgreSQL refuses root): run the tests as another user") from None
            os.chown(self.root, self._runas.pw_uid, self._runas.pw_gid)
        self.started = False

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        user = self._runas

        def drop() -> None:  # in the child, before exec: become the postgres user
            if user is not None:
                os.setgid(user.pw_gid)
                os.setuid(user.pw_uid)

        env = {**os.environ, "LC_ALL": "C", "TZ": "UTC"}
        env.pop("PGDATA", None)
        return subprocess.run([str(self.bin_dir / args[0]), *args[1:]], preexec_fn=drop, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=check,
                              cwd=self.root)

    def start(self) -> "ThrowawayCluster":
        try:
            self._run("initdb", "-D", str(self.data), "-U", self.user, "-A", "trust", "-E", "UTF8",
                      "--no-sync", "--locale=C")
            options = f"-k {self.root} -p {self.port} -c listen_addresses='' " + " ".join(
                f"-c {name}={value}" for name, value in self.settings.items())
            self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "server.log"),
                      "-w", "-t", "60", "start")
        except subprocess.CalledProcessError as exc:
            log = self.root / "server.log"
            detail = (exc.stdout or "") + (log.read_text() if log.exists() else "")
            self.stop()
            raise RuntimeError(f"the throwaway PostgreSQL cluster did not start: {detail.strip()[-2000:]}") from None
        self.started = True
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@/{database}?host={self.root}&port={self.port}"

    def create_database(self, prefix: str = "t") -> str:
        """A new empty database; returns its URL."""
        import psycopg

        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        import psycopg

        name = url.split("/", 3)[3].split("?", 1)[0]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        if self.data.exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)
        self.started = False
