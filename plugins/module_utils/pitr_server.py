# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Start and stop the server on a data directory: through its systemd unit, or (no unit, as in
containers without systemd) with ``pg_ctl`` as the postgres user."""
from __future__ import annotations

import os
import subprocess

from ansible_collections.lifeline.dr.plugins.module_utils.errors import RestoreError
from ansible_collections.lifeline.dr.plugins.module_utils.pgbackrest_run import clean
from ansible_collections.lifeline.dr.plugins.module_utils.run_as import as_user


class Server:
    def __init__(self, data_dir: str, *, port: int, pg_ctl: str, service: str = "",
                 socket_dir: str | None = None, log_file: str | None = None, user: str | None = "postgres") -> None:
        self.data_dir = data_dir
        self.port = port
        self.pg_ctl = pg_ctl
        self.service = service
        self.socket_dir = socket_dir
        self.log_file = log_file or os.path.join(os.path.dirname(data_dir.rstrip("/")) or "/",
                                                 os.path.basename(data_dir.rstrip("/")) + ".lifeline-restore.log")
        self.user = user if os.geteuid() == 0 else None

    def _run(self, argv: list, *, as_postgres: bool, timeout: int) -> subprocess.CompletedProcess:
        return subprocess.run(argv, capture_output=True, text=True, errors="replace", check=False, cwd="/",
                              timeout=timeout, **as_user(self.user if as_postgres else None))

    def running(self) -> bool:
        if self.service:
            return self._run(["systemctl", "is-active", "--quiet", self.service], as_postgres=False,
                             timeout=60).returncode == 0
        if not os.path.exists(os.path.join(self.data_dir, "postmaster.pid")):
            return False
        return self._run([self.pg_ctl, "-D", self.data_dir, "status"], as_postgres=True, timeout=60).returncode == 0

    def start(self, *, timeout: int) -> None:
        if self.service:
            proc = self._run(["systemctl", "start", self.service], as_postgres=False, timeout=timeout)
            where = "journalctl -u %s" % self.service
        else:
            opts = "-p %d" % self.port + (" -k %s" % self.socket_dir if self.socket_dir else "")
            proc = self._run([self.pg_ctl, "-D", self.data_dir, "-o", opts, "-l", self.log_file, "-w",
                              "-t", str(timeout), "start"], as_postgres=True, timeout=timeout + 30)
            where = self.log_file
        if proc.returncode != 0:
            raise RestoreError("the restored server on %s did not start: %s; server log %s: %s"
                               % (self.data_dir, clean(proc.stderr or proc.stdout, 300), where, self.log_tail()))

    def stop(self, *, timeout: int = 300) -> None:
        """Stop the server; raise unless it is down afterwards (its data directory is about to be
        moved: never from under a running server)."""
        if self.service:
            proc = self._run(["systemctl", "stop", self.service], as_postgres=False, timeout=timeout)
        elif os.path.exists(os.path.join(self.data_dir, "postmaster.pid")):
            proc = self._run([self.pg_ctl, "-D", self.data_dir, "-m", "fast", "-w", "-t", str(timeout), "stop"],
                             as_postgres=True, timeout=timeout + 30)
        else:
            return
        if self.running():
            raise RestoreError("the server on %s did not stop (%s): nothing was moved"
                               % (self.data_dir, clean(proc.stderr or proc.stdout, 300) or "no message"))

    def log_tail(self, limit: int = 800) -> str:
        if self.service:
            return "(see journalctl -u %s)" % self.service
        try:
            with open(self.log_file, "rb") as fh:
                fh.seek(max(0, os.path.getsize(self.log_file) - 4 * limit))
                return clean(fh.read().decode("utf-8", "replace"), limit)
        except OSError:
            return "(no log)"
