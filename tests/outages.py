"""Private PostgreSQL and Redis servers that a test may stop and start again (outage tests).

Never stop the machine's shared PostgreSQL or Redis: other runs use them. These servers belong
to one test, listen on a free port of 127.0.0.1 (and PostgreSQL on a Unix socket in its own
folder, so they work inside the loopback-only namespace too), and go away with it.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import redis

from tests.conftest import free_tcp_port


def _postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not found:
        raise RuntimeError("PostgreSQL's server binaries (/usr/lib/postgresql/*/bin) are missing")
    return Path(found[-1]).parent


class PrivatePostgres:
    """A PostgreSQL cluster of one test (initdb in ``folder``), trust authentication.

    initdb refuses to run as root: as root, the cluster belongs to the ``postgres`` user.

    :param folder: an empty folder for the cluster, its socket and its log.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_tcp_port()
        self._bin = _postgres_bin()
        self._data = folder / "data"
        self._log = folder / "postgres.log"
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of its ``teleconsult`` database."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/teleconsult"

    def _run(self, *command: str) -> None:
        done = subprocess.run([*self._as, *command], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{command[0]} failed ({done.returncode}): {done.stderr.strip()}")

    def create(self) -> None:
        """Make the cluster, start it and create the ``teleconsult`` database."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if self._as:
            shutil.chown(self.folder, "postgres", "postgres")
        self._run(str(self._bin / "initdb"), "-D", str(self._data), "-U", "postgres",
                  "--auth=trust", "--no-sync")  # fmt: skip
        self.start()
        self._run(str(self._bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                  "-U", "postgres", "teleconsult")  # fmt: skip

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(str(self._bin / "pg_ctl"), "-D", str(self._data), "-l", str(self._log),
                  "-o", options, "-w", "start")  # fmt: skip

    def stop(self) -> None:
        """Stop the server at once (open connections are cut)."""
        self._run(str(self._bin / "pg_ctl"), "-D", str(self._data), "-m", "immediate", "stop")

    def remove(self) -> None:
        """Stop the server if it runs and delete the cluster."""
        if (self._data / "postmaster.pid").exists():
            self._run(str(self._bin / "pg_ctl"), "-D", str(self._data), "-m", "immediate",
                      "stop")  # fmt: skip
        shutil.rmtree(self.folder, ignore_errors=True)


class PrivateRedis:
    """A redis-server of one test, without persistence, that can be frozen and thawed.

    :param folder: an empty folder for its working directory and log.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_tcp_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server and wait until it answers."""
        self.folder.mkdir(parents=True, exist_ok=True)
        command = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", ""]
        command += ["--appendonly", "no", "--dir", str(self.folder)]
        with (self.folder / "redis.log").open("ab") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        client.close()

    def freeze(self) -> None:
        """Stop the server in its tracks (SIGSTOP): connections stay open, nothing answers."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """Let a frozen server go on (SIGCONT)."""
        assert self._process is not None
        self._process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """Terminate the server (thawed first, so that it can exit)."""
        if self._process is not None and self._process.poll() is None:
            self.thaw()
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
