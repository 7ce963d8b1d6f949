"""`serve` stops on SIGTERM/SIGINT within a documented bound, even with a provider that never answers.

A real `motorcade serve` process, a real SQLite file and a real local HTTP server that accepts each
request and never answers (the webhook channel's own timeout is 120 s). After the signal the process
must exit within `stop_grace_seconds` plus start-up slack, leave the batch in flight claimed (it may
have reached the provider: its claim expires and it is re-sent with the same key) and give every other
claimed send back, with no attempt counted.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import zoneinfo
from pathlib import Path

import pytest

from motorcade.project import Project

SH = zoneinfo.ZoneInfo("Asia/Shanghai")
GRACE = 1.0


class HangingServer:
    """Accepts HTTP requests on 127.0.0.1 and never answers them."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.requests = 0
        self.held: list[socket.socket] = []
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self.closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            conn.settimeout(5)
            try:
                if conn.recv(65536):
                    self.requests += 1
            except OSError:
                pass
            self.held.append(conn)  # never answered

    def __enter__(self) -> "HangingServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.closed.set()
        self.thread.join(timeout=5)
        for conn in self.held:
            conn.close()
        self.sock.close()


def make_project(directory: Path, url: str, people: int = 20) -> Project:
    (directory / "rules").mkdir(parents=True)
    (directory / "templates").mkdir()
    slot = (dt.datetime.now(SH) - dt.timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M")
    (directory / "motorcade.toml").write_text(f"""
[project]
name = "stop"
timezone = "Asia/Shanghai"

[channels.webhook]
url = "{url}"
secret = "s"
batch_size = 1
timeout = 120

[activation]
claim_seconds = 300
stop_grace_seconds = {GRACE}
poll_seconds = 0.2
""", encoding="utf-8")
    (directory / "rules" / "r.mc").write_text(f"""
segment everyone {{ where profile.is_owner = true }}
campaign blast {{ audience everyone  schedule at {slot}  via webhook template "n"  transactional }}
""", encoding="utf-8")
    (directory / "templates" / "n.txt").write_text("{{ person.name }}", encoding="utf-8")
    project = Project(directory)
    store = project.store
    with store.transaction():
        ids = [store.create_person({"name": f"客户{i}", "is_owner": True}) for i in range(people)]
    now = dt.datetime.now(dt.timezone.utc)
    store.record_segment_run("everyone", ids, revision="t", as_of=now, computed_at=now, duration_ms=0, plan=None)
    return project


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_exits_within_the_grace_period_with_a_hanging_provider(tmp_path, sig):
    with HangingServer() as server:
        project = make_project(tmp_path / "p", server.url)
        env = {**os.environ, "MOTORCADE_LOAD_PLUGINS": "webhook", "MOTORCADE_PROJECT": str(project.directory)}
        proc = subprocess.Popen([sys.executable, "-m", "motorcade.cli", "serve"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 60
            while server.requests < 1 and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.05)
            assert server.requests == 1, proc.stderr.read().decode() if proc.poll() is not None else "no request"
            time.sleep(0.3)
            signalled = time.monotonic()
            proc.send_signal(sig)
            out, err = proc.communicate(timeout=GRACE + 15)
            took = time.monotonic() - signalled
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert took < GRACE + 5, f"serve took {took:.1f} s to stop"
        assert proc.returncode == 0, err.decode()
        assert "stopped after 1 passes" in out.decode()
        sends = project.store.list_sends(limit=100)
        in_flight = [s for s in sends if s["status"] == "claimed"]
        assert len(in_flight) == 1 and in_flight[0]["attempts"] == 1  # may have reached the provider
        released = [s for s in sends if s["status"] == "planned"]
        assert len(released) == 19
        assert all(s["attempts"] == 0 and s["claimed_by"] is None for s in released)
        assert server.requests == 1  # nothing claimed after the signal
        project.close()
