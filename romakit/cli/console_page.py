"""The console page's one cell (:func:`page`), run by Voilà in a fresh kernel for each
visitor: it builds the clients the launcher (:mod:`romakit.cli.console`) described in
``ROMAKIT_CONSOLE_PAGE`` and shows ``rk.console`` under a header that says what it acts
on and where it is journaled. The same widgets as in JupyterLab, so the same preview,
confirmation and guard. A failure to connect is shown as a sentence, never a traceback.
"""

from __future__ import annotations

import argparse
import html
import json
import os
from typing import Any

from romakit.errors import InputError
from romakit.operations import GATEWAY, LINK

#: the environment variable that carries what the page connects to (JSON), set by the launcher
ENV = "ROMAKIT_CONSOLE_PAGE"

#: what the page keeps alive while its kernel runs (the sandbox, the clients, the console)
_live: list[Any] = []

_BOX = "padding:8px 12px;margin-bottom:8px;border-left:4px solid {colour};background:{background}"


def gateway_ids(args: argparse.Namespace) -> list[str]:
    """The gateways the page has a tab for: ``--gateway``, else every gateway of
    ``--secrets-file``, else the one the environment names (ROMAKIT_GATEWAY_ID), else none."""
    from romakit import config
    from romakit.cli import common
    from romakit.cli.fanout import read_secrets

    if args.gateway:
        return [args.gateway]
    if args.secrets_file:
        return list(read_secrets(args.secrets_file))
    gid = config.collect(common.sources(args, GATEWAY), GATEWAY).get("gateway_id")
    return [str(gid)] if gid else []


def page() -> None:
    """Show the console the launcher described (or why it cannot be shown)."""
    from IPython.display import HTML, display

    os.environ.pop("JUPYTER_TOKEN", None)  # the page's own access token: nothing in the kernel needs it
    try:
        spec = json.loads(os.environ.get(ENV) or "null")
        if not isinstance(spec, dict):
            raise InputError(f"{ENV} is not set: start this page with romakit console")
        if spec.get("cwd"):  # relative paths the command was given (--secrets-file) mean what they meant there
            os.chdir(spec["cwd"])
        header, link, gateways = _sandbox(spec) if spec.get("target") == "sandbox" else _account(spec)
        import romakit as rk

        con = rk.console(link, gateways=gateways)
        _live.append(con)
        for part, name in ((con.picker, "rk-picker"), (con.panel, "rk-panel"), (con.results, "rk-results")):
            part.widget.add_class(name)  # stable handles for a page's style and its browser test
    except Exception as e:  # noqa: BLE001 - a sentence on the page, never a traceback
        display(HTML(_box(f"<b>The console could not start.</b> {html.escape(type(e).__name__)}: "
                          f"{html.escape(str(e))[:2000]}", "#b00020", "#fdecea")))
        return
    display(HTML(header))
    display(con)


def _sandbox(spec: dict[str, Any]) -> tuple[str, Any, list[Any]]:
    import romakit as rk

    sb = rk.sandbox(devices=int(spec["devices"]), seed=int(spec["seed"]))
    _live.append(sb)
    link = sb.link_client()
    gateways = [sb.gateway(g) for g in sb.gateways()[: int(spec.get("gateways", 0))]]
    _live.extend([link, *gateways])
    header = _box(
        f"<b>romakit console: the built-in sandbox</b> ({len(sb.fleet):,} devices, seed {int(spec['seed'])}). "
        "Nothing here reaches a real fleet. " + _how(link), "#1565c0", "#e8f0fe")
    return header, link, gateways


def _account(spec: dict[str, Any]) -> tuple[str, Any, list[Any]]:
    from romakit.cli import common

    args = argparse.Namespace(**spec["args"])
    profile = common.profile(args, LINK)
    link = profile.link_client(**common.link_options(args))
    _live.append(link)
    gateways = [common.gateway(argparse.Namespace(**{**vars(args), "gateway": gid})) for gid in gateway_ids(args)]
    _live.extend(gateways)
    where = ", ".join(f"{html.escape(k)} from {html.escape(v)}" for k, v in profile.sources().items())
    header = _box(
        f"<b>romakit console: instance <code>{html.escape(str(link.instance_id))}</code></b> at "
        f"<code>{html.escape(str(link.endpoint))}</code>, as {html.escape(profile.masked_auth())}. "
        f"<b>This is a real fleet.</b> " + _how(link) + f"<br><small>settings: {where}</small>",
        "#b26a00", "#fff4e5")
    return header, link, gateways


def _how(link: Any) -> str:
    journal = getattr(getattr(link, "journal", None), "location", "not journaled")
    return ("Pick devices, press <i>Preview (dry run)</i>, tick the confirmation, then <i>Run</i>: nothing is "
            f"sent before that. Journal: <code class='rk-journal'>{html.escape(str(journal))}</code>.")


def _box(inner: str, colour: str, background: str) -> str:
    return f"<div class='rk-page-header' style='{_BOX.format(colour=colour, background=background)}'>{inner}</div>"
