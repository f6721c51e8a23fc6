"""What the ``romakit`` command prints: a human summary by default, one JSON object with
``--json``, and the exit status a result deserves."""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
from typing import Any

from romakit.outcomes import AUTH_CODES, OUTCOMES, REPORTED_FAILED, SKIPPED, SUCCESS
from romakit.textsafe import terminal, terminal_frame

EXIT_OK, EXIT_NOT_ALL_OK, EXIT_BAD_INPUT, EXIT_UNREACHABLE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

#: codes that mean the request never reached the service, or the service refused us
#: (wrong AK/SK, expired or bad token, no permission): nothing was done to any device.
#: A batch whose credentials are refused at its pre-flight read never gets here: the
#: command exits 3 on :class:`~romakit.errors.AuthRefused` itself (see ``romakit.cli.main``).
REFUSED = re.compile(r"^(romakit\.ConnectError|HTTP\.40[13]|APIGW?\.030[1-7]|APIG\.100[2-5])$")


def records(frame: Any) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts (ISO times)."""
    return json.loads(frame.to_json(orient="records", date_format="iso", date_unit="ms"))


def few(ids: list, n: int = 10) -> str:
    """The first ``n`` ids, comma separated, and how many more."""
    more = f" ... and {len(ids) - n:,} more" if len(ids) > n else ""
    return ", ".join(terminal(i) for i in ids[:n]) + more


def unreached(result: Any) -> str | None:
    """Why nothing reached the service (the first such message), or None when something
    did: no device succeeded and every device sent failed connecting or was refused."""
    f = result.frame
    sent = f[f["outcome"] != SKIPPED]
    if not len(sent) or (sent["outcome"] == SUCCESS).any():
        return None
    codes = sent["error_code"].astype(object).fillna("")
    status = sent["http_status"].fillna(0).astype("int64").tolist() if "http_status" in sent.columns else [0] * len(sent)
    refused = [bool(REFUSED.match(str(c))) or c in AUTH_CODES or s in (401, 403) for c, s in zip(codes, status, strict=True)]
    if not all(refused):
        return None
    first = sent.iloc[0]
    return f"{first['error_code']}: {first['error_msg']}"


def exit_status(result: Any) -> int:
    """0 all succeeded; 3 nothing reached the service (or it refused us); 1 otherwise."""
    if len(result) and result.counts[SUCCESS] == len(result):
        return EXIT_OK
    return EXIT_UNREACHABLE if unreached(result) else EXIT_NOT_ALL_OK


def resume_command(op_id: str, args: argparse.Namespace | None = None, verb: str = "resume") -> str:
    """``romakit resume OP`` (or ``retry``) as this run's user must type it: the gateways'
    secrets are given again (the journal never holds them)."""
    secrets = getattr(args, "secrets_file", None)  # only the gateways' commands take one
    return f"romakit {verb} {op_id}" + (f" --secrets-file {shlex.quote(str(secrets))}" if secrets else "")


def print_result(result: Any, args: argparse.Namespace, *, extra: dict[str, Any] | None = None) -> int:
    """Print the result (a summary, or ``--json``) and return the exit status it deserves."""
    status = exit_status(result)
    if getattr(args, "json", False):
        out: dict[str, Any] = {
            "op_id": result.op_id, "operation": result.operation, "target": result.target,
            "requested": int(result.requested), "counts": result.counts, "stopped": result.stopped,
            "parent_op_id": result.parent_op_id, "exit_status": status, **(extra or {}),
        }
        if getattr(args, "all_rows", False):
            out["rows"] = records(result.frame)
        else:
            out["failures"] = records(result.failures())
        print(json.dumps(out), flush=True)
    else:
        print(terminal(summary_text(result, show=getattr(args, "show", 20), extra=extra, args=args),
                       keep_newlines=True), flush=True)
    if status == EXIT_UNREACHABLE:
        print(f"romakit: nothing was done: {terminal(unreached(result))}", file=sys.stderr)
    return status


def summary_text(result: Any, *, show: int = 20, extra: dict[str, Any] | None = None,
                 args: argparse.Namespace | None = None) -> str:
    """The human summary: what ran where, devices per outcome and code, the first failures,
    and the commands that follow from it; what the service said is shown escaped
    (:func:`romakit.textsafe.terminal`)."""
    c = result.counts
    rel = f" (continues {result.parent_op_id})" if result.parent_op_id else ""
    lines = [f"{result.operation} on {result.target}, op {result.op_id}{rel}: {len(result):,} device{'' if len(result) == 1 else 's'}"]
    if extra and extra.get("resumed") is not None:
        lines[0] += f" ({extra['resumed']:,} sent by this resume)"
    f = result.frame
    for o in OUTCOMES:
        if not c[o]:
            continue
        codes = f.loc[f["outcome"] == o, "error_code"].astype(object).dropna().value_counts()
        why = ", ".join(f"{terminal(k)} ({v:,})" for k, v in codes.head(4).items())
        more = f", {len(codes) - 4} more codes" if len(codes) > 4 else ""
        lines.append(f"  {o:<8} {c[o]:>8,}" + (f"   {why}{more}" if why else ""))
    if result.stopped:
        lines.append(f"stopped: {result.stopped}")
    bad = result.failures()
    if len(bad) and show > 0:
        cols = [k for k in ("device_id", "outcome", "error_code", "error_msg") if k in bad.columns]
        lines += ["", f"not successful ({len(bad):,}):", terminal_frame(bad[cols].head(show)).to_string(index=False)]
        if len(bad) > show:
            lines.append(f"... and {len(bad) - show:,} more (--show N, or --json for all)")
    if (bad["error_code"].astype(object) == REPORTED_FAILED).any():
        lines.append("hint: the service refused some ids without a reason; do they exist? "
                     "romakit offline --dry-run ID... checks them against the device listing")
    if getattr(result, "journal", None) is None:  # run without a journal: nothing to read back
        nexts = ["not journaled (--no-journal): this output is the only record of the run"]
    else:
        nexts = [f"romakit journal {result.op_id}", f"romakit report {result.op_id}"]
        if c["unknown"] + c[SKIPPED]:
            nexts.append(resume_command(result.op_id, args))
        if result.retry_ids():
            nexts.append(resume_command(result.op_id, args, "retry"))
    lines += ["", "next: " + "   ".join(nexts)]
    return "\n".join(lines)
