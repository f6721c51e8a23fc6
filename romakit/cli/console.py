"""``romakit console``: ``rk.console`` as a web page with no code cells, served by Voilà
on 127.0.0.1, for people who do not write Python.

The launcher writes a one-cell notebook into a private temporary directory (the cell
calls :func:`romakit.cli.console_page.page`), and runs Voilà on it, bound to loopback,
with a random token handed over in ``JUPYTER_TOKEN`` (never on a command line) and a
free port. What the page connects to travels in :data:`ENV` as JSON: the sandbox's size
and seed, or the command's connection flags and profile name, never a secret (secrets
have no flag; they stay in the environment the kernel inherits). Against a real account
the launcher resolves the settings and makes the pre-flight read first, so a refused key
is said in the terminal, before any page exists. Ctrl-C stops Voilà, its kernels, and
removes the directory.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

from romakit.cli.console_page import ENV
from romakit.cli.output import EXIT_BAD_INPUT, EXIT_OK, EXIT_UNREACHABLE
from romakit.errors import InputError

#: the environment variable that tells the page what to connect to (JSON, no secret in it)
NOTEBOOK = "romakit-console.ipynb"
#: the page's one cell (Voilà shows its output, never its source)
CELL = "from romakit.cli.console_page import page\n\npage()"
#: seconds for Voilà to listen
START_S = 120.0
#: what Voilà logs once it listens
READY = "is running at"
INSTALL = ("romakit: the console page needs Voila, which is not installed in this Python "
           f"({sys.executable}): pip install voila (it is in romakit's lab extra: pip install -e '.[lab]'; "
           "make console installs it)")


def console(args: argparse.Namespace) -> int:
    """Serve the console page until Ctrl-C; print its address."""
    if not _have_voila():
        print(INSTALL, file=sys.stderr)
        return EXIT_BAD_INPUT
    spec = page_spec(args)
    with tempfile.TemporaryDirectory(prefix="romakit-console-") as tmp:
        notebook = write_notebook(Path(tmp))
        return _serve(args, spec, notebook)


def _have_voila() -> bool:
    try:
        return importlib.util.find_spec("voila") is not None
    except (ImportError, ValueError):
        return False


def chain_mode(args: argparse.Namespace) -> bool:
    """True when the page connects with the credential chain, not the sandbox: ``--chain``,
    ``--profile``, or any connection flag given."""
    if args.sandbox:
        given = _connection_flags_given(args)
        if given:
            raise InputError(f"--sandbox takes no connection settings ({', '.join(given)}): drop them, or --sandbox")
        return False
    return bool(args.chain or args.profile or _connection_flags_given(args) or args.secrets_file)


def _connection_flags_given(args: argparse.Namespace) -> list[str]:
    from romakit import config

    return sorted({s.flag for s in config.settings_for(None)
                   if s.flag and getattr(args, s.flag.lstrip("-").replace("-", "_"), None) not in (None, False)})


def page_spec(args: argparse.Namespace) -> dict[str, Any]:
    """What :data:`ENV` carries to the page. Against an account, the settings are resolved
    and the pre-flight read made here first (a refusal ends the command, exit 3)."""
    if not chain_mode(args):
        if args.devices < 1 or args.gateways < 0:
            raise InputError("--devices must be at least 1 and --gateways at least 0")
        return {"target": "sandbox", "devices": args.devices, "seed": args.seed, "gateways": args.gateways,
                "cwd": os.getcwd()}
    from romakit.cli import common
    from romakit.cli.console_page import gateway_ids

    link = common.link_client(args)
    try:
        link.preflight()
    finally:
        link.close()
    for gid in gateway_ids(args):  # every gateway's settings complete, before any page exists
        common.gateway(argparse.Namespace(**{**vars(args), "gateway": gid})).close()
    keep = {k: v for k, v in vars(args).items() if isinstance(v, str | int | float | bool) or v is None}
    return {"target": "chain", "args": keep, "cwd": os.getcwd()}


def write_notebook(directory: Path) -> Path:
    """The page's notebook: one code cell, no output, no secret."""
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(CELL)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["title"] = "romakit console"
    path = directory / NOTEBOOK
    nbformat.write(nb, path)
    return path


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(args: argparse.Namespace, spec: dict[str, Any], notebook: Path) -> int:
    import secrets

    token = secrets.token_urlsafe(24)
    port = args.page_port or free_port()
    env = {**os.environ, ENV: json.dumps(spec), "JUPYTER_TOKEN": token}
    if getattr(args, "journal", None):  # the command's --journal / --no-journal, for the page's kernels
        env["ROMAKIT_JOURNAL"] = args.journal
    elif getattr(args, "no_journal", False):
        env["ROMAKIT_JOURNAL"] = "0"
    cmd = [sys.executable, "-m", "voila", str(notebook), "--no-browser", "--Voila.ip=127.0.0.1", f"--port={port}",
           "--Voila.port_retries=0", "--Voila.auto_token=True", "--VoilaConfiguration.show_tracebacks=False",
           "--theme=light"]
    log_path = notebook.parent / "voila.log"
    started = time.monotonic()
    stop = _Stop()
    with open(log_path, "w", encoding="utf-8") as log:
        # its own session: the terminal's Ctrl-C reaches this process only, which stops Voila in order
        proc = subprocess.Popen(cmd, env=env, cwd=notebook.parent, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        ready = threading.Event()
        reader = threading.Thread(target=_copy_log, args=(proc.stderr, log, ready), daemon=True)
        reader.start()
        try:
            with stop:
                if not _wait_ready(proc, ready, stop):
                    return EXIT_OK if stop.requested else _failed(proc, log_path)
                url = f"http://127.0.0.1:{port}/"
                what = (f"the sandbox ({spec['devices']:,} devices, seed {spec['seed']})" if spec["target"] == "sandbox"
                        else "your account (the credential chain)")
                print(f"romakit console: {what}, ready in {time.monotonic() - started:.1f} s\n"
                      f"  open {url}?token={token}\n"
                      "  (only this machine can reach it; Ctrl-C stops it)", flush=True)
                if args.open:
                    import webbrowser

                    webbrowser.open(f"{url}?token={token}")
                while proc.poll() is None:
                    stop.wait(1.0)
                    if stop.requested:
                        break
                if not stop.requested:  # Voila ended by itself
                    return _failed(proc, log_path)
        finally:
            _stop(proc)
            reader.join(5)
    print("romakit console: stopped", flush=True)
    return EXIT_OK


class _Stop:
    """Ctrl-C, SIGTERM or SIGHUP while serving: a request to stop, waited on as an event."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.requested = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _Stop:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            self._old[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)

    def _on_signal(self, *_: object) -> None:
        self.requested = True
        self.event.set()

    def wait(self, timeout: float) -> None:
        self.event.wait(timeout)


def _copy_log(stream: IO[str] | None, log: IO[str], ready: threading.Event) -> None:
    """Voila's log lines into the log file; ``ready`` set once it listens."""
    if stream is None:
        return
    for line in stream:
        log.write(line)
        log.flush()
        if READY in line:
            ready.set()


def _wait_ready(proc: subprocess.Popen, ready: threading.Event, stop: _Stop) -> bool:
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline and not stop.requested:
        if ready.wait(0.2):
            return True
        if proc.poll() is not None:
            return ready.is_set()
    return False


def _failed(proc: subprocess.Popen, log_path: Path) -> int:
    try:
        lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        lines = []
    if any("No module named voila" in ln or "No module named 'voila'" in ln for ln in lines):
        print(INSTALL, file=sys.stderr)
        return EXIT_BAD_INPUT
    tail = "\n".join(lines[-15:])
    state = f"exited with {proc.returncode}" if proc.poll() is not None else f"did not listen within {START_S:.0f} s"
    print(f"romakit: the console page's server (Voila) {state}; its last lines:\n{tail}", file=sys.stderr)
    return EXIT_UNREACHABLE


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM (Voila shuts its kernels down), then SIGKILL if it hangs."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            return
        try:
            proc.send_signal(sig)
            proc.wait(15)
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            return
