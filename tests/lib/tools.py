# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""External tools as the tests, the demo and the scripts run them: output captured, and a tool
that fails raises ToolError, whose message shows the command and the tool's own stderr (a bare
CalledProcessError shows only the exit status, which hides why initdb or psql failed)."""
from __future__ import annotations

import os
import pwd
import shlex
import subprocess

#: how many of the tool's last stderr (or stdout) lines an error shows
TAIL_LINES = 20


class ToolError(subprocess.CalledProcessError):
    """An external tool exited non-zero (or could not be started). A CalledProcessError, so
    callers that expect one still catch it; str() carries the command and the stderr tail."""

    def __init__(self, returncode: int, cmd, output=None, stderr=None, *, user: str | None = None) -> None:
        super().__init__(returncode, cmd, output, stderr)
        self.user = user

    def __str__(self) -> str:
        who = " (as user %s)" % self.user if self.user else ""
        said = tail(self.stderr) or tail(self.output) or "(no output)"
        return "`%s`%s exited with status %s:\n%s" % (shlex.join(map(str, self.cmd)), who, self.returncode, said)


def tail(data, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` non-empty lines of a tool's output (bytes or text), indented."""
    if not data:
        return ""
    if isinstance(data, bytes):
        data = data.decode("utf-8", errors="replace")
    kept = [line for line in data.splitlines() if line.strip()][-lines:]
    return "\n".join("  " + line for line in kept)


def _switch_to(user: str):
    pw = pwd.getpwnam(user)

    def preexec() -> None:
        os.setgroups([])
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)
    return preexec


def run(argv, *, user: str | None = None, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """subprocess.run(argv) with stdout/stderr captured unless redirected by the caller;
    ``user`` runs the tool as that system user (the caller must be root). Raises ToolError when
    ``check`` and the tool fails or cannot be started."""
    if "stdout" not in kwargs and "stderr" not in kwargs:
        kwargs["capture_output"] = True
    if user is not None:
        kwargs["preexec_fn"] = _switch_to(user)
    try:
        proc = subprocess.run(argv, check=False, **kwargs)  # pylint: disable=subprocess-run-check
    except (FileNotFoundError, PermissionError) as exc:
        raise ToolError(127, argv, stderr="cannot run %s: %s" % (argv[0], exc.strerror), user=user) from None
    if check and proc.returncode != 0:
        raise ToolError(proc.returncode, argv, proc.stdout, proc.stderr, user=user)
    return proc
