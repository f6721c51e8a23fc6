"""Messages of the library rewritten for the command's users: what a notebook user
passes as a keyword, a terminal user types as a flag."""

from __future__ import annotations

import re

from romakit.textsafe import terminal

#: what the clients tell notebook users -> what the command's users type instead
FLAG_FOR = (
    ("pass allow_insecure=True", "pass --allow-insecure"),
    ("allow_insecure=True", "--allow-insecure"),
    ("chunk_size=", "--chunk-size "),
    ("concurrency=", "--concurrency "),
    ("timeout=", "--timeout "),
    ("rk.resume(op_id, client)", "romakit resume OP"),
    ("use `with gw:` or gw.connect() first", "check --host, --port and the gateway's secret"),
)


def for_terminal(message: str) -> str:
    """``message`` in the command's terms (flags, subcommands; no reST backticks), its
    control characters shown escaped (it may quote the service)."""
    for said, flag in FLAG_FOR:
        message = message.replace(said, flag)
    return terminal(re.sub(r"``?([^`]+)``?", r"\1", message))


def no_rollout(devices: int) -> str:
    """The dry run's line for a plan without a rollout policy."""
    return f"rollout: none (--no-rollout): all {devices:,} devices can be hit before anything can stop the run"
