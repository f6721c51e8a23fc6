"""The ``romakit`` command as a terminal user meets it: a clean environment, a run to
completion (:func:`romakit`), or a pseudo-terminal to read, type into and signal
(:class:`Terminal`). Shared by the CLI tests; every wait is on output, never a sleep."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def cli_env(**extra: str) -> dict[str, str]:
    """This process's environment without any ``ROMAKIT_*`` (the test's home and this
    checkout kept, and the journal the test reads named: a command pointed at a sandbox
    would otherwise use the sandbox journal), plus ``extra``."""
    from romakit.store.target import setting

    env = {k: v for k, v in os.environ.items() if not k.startswith("ROMAKIT_")}
    journal = os.environ.get("ROMAKIT_JOURNAL") or str(setting())
    env.update(ROMAKIT_HOME=os.environ["ROMAKIT_HOME"], PYTHONPATH=str(ROOT), ROMAKIT_JOURNAL=journal)
    env.update(extra)
    return env


def link_env(sb) -> dict[str, str]:  # noqa: ANN001 - a romakit Sandbox
    """The sandbox's LINK settings and credentials as ``ROMAKIT_*`` variables."""
    c = sb.credentials
    return {"ROMAKIT_ENDPOINT": sb.link_endpoint, "ROMAKIT_PROJECT_ID": c.project_id,
            "ROMAKIT_INSTANCE_ID": c.instance_id, "ROMAKIT_AK": c.ak, "ROMAKIT_SK": c.sk}


def link_args(sb) -> list[str]:  # noqa: ANN001 - a romakit Sandbox
    """The sandbox's LINK address as flags (credentials stay in the environment)."""
    c = sb.credentials
    return ["--endpoint", sb.link_endpoint, "--project-id", c.project_id, "--instance-id", c.instance_id]


def romakit(*args: str, stdin: str | None = None, env: dict | None = None, timeout: float = 120,
            **run: object) -> subprocess.CompletedProcess:
    """``python -m romakit ARGS`` to its end, with ``env`` over :func:`cli_env`."""
    return subprocess.run([sys.executable, "-m", "romakit", *args], input=stdin, capture_output=True, text=True,
                          env=cli_env(**(env or {})), cwd=ROOT, timeout=timeout, **run)


class Terminal:
    """``romakit ARGS`` on a pseudo-terminal of ``columns`` (0: one never given a size, as
    under ``script``, ``ssh -t`` or CI): read what it prints, type, send Ctrl-C."""

    def __init__(self, args: list[str], env: dict[str, str], *, columns: int = 100) -> None:
        # the size is the pty's alone: pytest-xdist's workers export COLUMNS=80 and LINES=24
        environ = {k: v for k, v in cli_env(**env).items() if k not in ("COLUMNS", "LINES")}
        size = struct.pack("HHHH", 40 if columns else 0, columns, 0, 0)
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: the pty is its stdin, stdout and stderr
            os.chdir(ROOT)
            fcntl.ioctl(0, termios.TIOCSWINSZ, size)  # sized before the command can ask
            os.execve(sys.executable, [sys.executable, "-m", "romakit", *args], environ)
        self.out = b""
        #: the exit status once :meth:`wait` has seen the end (None while it runs)
        self.status: int | None = None

    @property
    def text(self) -> str:
        """What the terminal showed so far, as text."""
        return self.out.decode(errors="replace")

    def expect(self, pattern: re.Pattern[bytes] | bytes | str, timeout: float = 60) -> re.Match[bytes]:
        """Read until ``pattern`` (a regex, or plain text) shows; AssertionError otherwise."""
        if isinstance(pattern, str):
            pattern = re.escape(pattern.encode())
        pattern = re.compile(pattern) if isinstance(pattern, bytes) else pattern
        deadline = time.monotonic() + timeout
        while (m := pattern.search(self.out)) is None:
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(left):
                raise AssertionError(f"{pattern.pattern!r} never showed; the terminal had:\n{self.text}")
        return m

    def type(self, line: str) -> None:
        os.write(self.fd, (line + "\n").encode())

    def ctrl_c(self) -> None:
        """What the terminal sends for Ctrl-C: SIGINT to the foreground process."""
        os.write(self.fd, b"\x03")

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return True
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            return False
        self.out += data
        return bool(data)

    def wait(self, timeout: float = 60) -> int:
        """Read to the end of the output, then the exit status."""
        deadline = time.monotonic() + timeout
        while self._read(max(deadline - time.monotonic(), 0.01)):
            if time.monotonic() > deadline:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                raise AssertionError(f"the command did not end within {timeout} s; the terminal had:\n{self.text}")
        _, status = os.waitpid(self.pid, 0)
        os.close(self.fd)
        self.status = os.waitstatus_to_exitcode(status)
        return self.status
