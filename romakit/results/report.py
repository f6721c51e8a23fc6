"""The evidence report: one self-contained HTML file a support case can carry.

What was asked and under which policy, a timeline of the chunks, outcomes by error
code (by product and gateway with a fleet listing), the failures with the request or
event ids to quote to Huawei, what ``verify()`` found, the reconnect curve (a
force-offline followed), what the fleet did around it (a watch's events) and the chain
of the operation (original, retries, resumes) from the journal. CSS is inline and charts are base64
PNGs: the file opens without a network. Nothing secret is written (the journal keeps
addresses only, never a key, token or device secret).

The journal lives above this layer: the chain is read from the journal a result
carries (``result.journal``, set by the journal that recorded or rebuilt it) or the
one given (``journal=``, a :class:`romakit.store.journal.Journal`); anything with a
``history(op_id)`` method will do (:class:`JournalReader`).
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypedDict

from romakit.operations import OPERATIONS
from romakit.outcomes import COLOURS, OUTCOMES, SUCCESS
from romakit.results.analysis import chunks
from romakit.results.atomic import export_target, replacing

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from romakit.results.result import BatchResult

#: failure rows listed in full (the rest are counted; the CSV export has them all)
MAX_FAILURE_ROWS = 1000
#: chunks listed in the chunk table
MAX_CHUNK_ROWS = 500
#: rows of each table of the fleet around the operation
MAX_AROUND_ROWS = 200
#: the sections, in order: (id, title); "snapshot" only in a deletion's (and a restore's) report
SECTIONS = (
    ("summary", "Summary"), ("request", "Request"), ("policy", "Policy"), ("timeline", "Timeline of chunks"),
    ("outcomes", "Outcomes"), ("failures", "Failures"), ("snapshot", "What was deleted (snapshot)"),
    ("verify", "Verification"), ("follow", "Reconnect curve"), ("around", "The fleet around it"),
    ("chain", "Chain of operations"),
)
#: the snapshot's fields a report lists, by (column, LINK record field, child record field)
SNAPSHOT_COLUMNS = (("product", "product_name", "product_name"), ("product_id", "product_id", "product_id"),
                    ("name", "device_name", "name"), ("node_id", "node_id", "node_id"),
                    ("parent", "parent_device_name", "gateway_id"), ("description", "description", "description"))



class History(TypedDict, total=False):
    """What the journal knows of an operation, for its report (:func:`romakit.store.reader.history`)."""

    op_id: str
    #: the listing rows of the operation's family (the first one, its retries and resumes), oldest first
    chain: pd.DataFrame
    state: str
    #: the recorded policy (chunking, pace, retry, rollout) and the chunk count; None: not recorded
    request: dict[str, Any] | None
    #: the client's secret-free address
    client: dict[str, Any] | None
    created_at: float
    version: str | None


class JournalReader(Protocol):
    """Where a report reads an operation's facts and chain (:class:`romakit.store.journal.Journal`)."""

    def history(self, op_id: str) -> History | None:
        """The journal's facts about ``op_id`` (:func:`romakit.store.reader.history`), or None."""
        ...

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d1d1f;margin:0;background:#f6f7f9}
main{max-width:1100px;margin:0 auto;padding:24px 28px 48px;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;padding-bottom:4px;border-bottom:1px solid #ddd}
.sub{color:#555;margin:0 0 12px}code{font:12.5px ui-monospace,SFMono-Regular,Menlo,monospace;background:#f1f3f5;padding:1px 4px;border-radius:3px}
table{border-collapse:collapse;font-size:12.5px;margin:6px 0 10px}th,td{border:1px solid #dde1e6;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f1f3f5}td.num,th.num{text-align:right}.kv th{width:230px}
.badge{display:inline-block;padding:2px 9px;border-radius:10px;color:#fff;font-weight:600;margin-right:6px}
.note{color:#555;font-size:12.5px}.warn{background:#fff4e5;border-left:4px solid #e65100;padding:6px 10px}
img{max-width:100%;height:auto;border:1px solid #eee}nav a{margin-right:12px}
footer{margin-top:32px;color:#666;font-size:12px}
"""


def write_report(result: BatchResult, path: str | os.PathLike, *, verify: Any = None,
                 fleet: pd.DataFrame | None = None, journal: JournalReader | None = None, follow: Any = None,
                 around: pd.DataFrame | None = None) -> Path:
    """Write :func:`render` to ``path`` (absolute; its directory must exist; ``.html``
    added when missing) whole or not at all, and return it. A directory or a device node
    is refused."""
    out = Path(path).expanduser().resolve()
    export_target(out, "the report")  # a directory is refused, not written beside as <dir>.html
    if out.suffix.lower() not in (".html", ".htm"):
        out = out.with_name(out.name + ".html")
    export_target(out, "the report")
    page = render(result, verify=verify, fleet=fleet, journal=journal, follow=follow, around=around)
    with replacing(out, "the report") as tmp:
        tmp.write_text(page, encoding="utf-8")
    return out


def render(result: BatchResult, *, verify: Any = None, fleet: pd.DataFrame | None = None,
           history: History | None = None, journal: JournalReader | None = None, follow: Any = None,
           around: pd.DataFrame | None = None) -> str:
    """The report as one HTML string. ``verify``: a LinkClient or a fleet frame read
    after the run; ``follow``: a :class:`~romakit.results.follow.Follow` of it;
    ``around``: the watches' events around it (``rk.timeline(around=res)``); ``history``:
    the journal's facts, else read from ``journal`` (default: the one the result
    carries); with neither, the report says it has no chain."""
    import pandas as pd

    checked = None
    if verify is not None:
        listing = verify if isinstance(verify, pd.DataFrame) else verify.devices()
        checked = result.verify(listing)
        fleet = listing if fleet is None else fleet
    journal = journal if journal is not None else result.journal
    if history is None and journal is not None:
        history = journal.history(str(result.op_id).split("+")[0])
    why = "" if history is not None or journal is not None else (
        "This result carries no journal (read from a file, or run with the journal off): only this operation "
        "is known. To read its chain, pass the journal it ran in: <code>res.report(path, journal=Journal(url))</code> "
        "(<code>romakit.store.journal.Journal</code>; <code>Journal()</code> is the one in effect).")
    history = history or {}
    request = history.get("request")  # the policy the journal recorded
    parts = [
        _summary(result), _request(result, request, history), _policy(request),
        _timeline(result), _outcomes(result, fleet), _failures(result), _snapshot(result),
        _verify(checked), _follow(result, follow), _around(result, around), _chain(result, history, why),
    ]
    title = f"romakit evidence: {result.operation} on {result.target}"
    nav = " ".join(f"<a href='#{sid}'>{t}</a>" for sid, t in SECTIONS if any(f"id='{sid}'" in p for p in parts))
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    from romakit import __version__

    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{_e(title)} (op {_e(result.op_id)})</title><style>{CSS}</style></head><body><main>"
        f"<h1>{_e(title)}</h1><p class='sub'>operation <code>{_e(result.op_id)}</code> · report written {now}"
        f" by romakit {_e(__version__)}</p><nav>{nav}</nav>{''.join(parts)}"
        "<footer>This file is self-contained (inline styles, charts as embedded images) and holds no "
        "credential: the journal records addresses only, never an access key, secret key, token or device "
        "secret.</footer></main></body></html>"
    )


# -- sections ---------------------------------------------------------------------------
def _section(sid: str, body: str) -> str:
    title = dict(SECTIONS)[sid]
    return f"<section id='{sid}'><h2>{title}</h2>{body}</section>"


def _summary(r: BatchResult) -> str:
    c = r.counts
    badges = "".join(f"<span class='badge' style='background:{COLOURS[o]}'>{c[o]:,} {o}</span>" for o in OUTCOMES if c[o])
    op = OPERATIONS.get(r.operation)
    what = f" ({_e(op.label)})" if op is not None and getattr(op, "label", None) else ""
    body = (f"<p><b>{_e(r.operation)}</b>{what} on <code>{_e(r.target)}</code>: {len(r):,} of "
            f"{int(r.requested):,} requested devices accounted for.</p><p>{badges or 'no devices'}</p>")
    steps = getattr(r, "steps", None)
    if steps is not None:
        body += (f"<p><b>Net state of a chain of {len(steps)} operations</b> (the first, its retries and resumes): "
                 "every device once, with its latest outcome; the row's <code>op_id</code> names the operation "
                 "that settled it (see the chain below).</p>")
    if r.stopped:
        body += f"<p class='warn'><b>Stopped early:</b> {_e(r.stopped)}</p>"
    if r.parent_op_id:
        body += f"<p>This operation continues <code>{_e(r.parent_op_id)}</code> (see the chain below).</p>"
    return _section("summary", body)


def _request(r: BatchResult, request: dict[str, Any] | None, history: History) -> str:
    rows: list[tuple[str, Any]] = [("operation", r.operation), ("target", r.target), ("op_id", r.op_id),
                                   ("devices requested", f"{int(r.requested):,}"),
                                   ("chunks (as in the timeline)", len(chunks(r)))]
    steps = getattr(r, "steps", None)
    if steps is not None:
        rows.append(("operations in the chain", len(steps)))
    for k, v in (history.get("client") or {}).items():
        rows.append((f"client {k}", v))
    if history.get("created_at"):
        rows.append(("started", _when(history["created_at"])))
    if steps is not None:
        left = int(getattr(r, "unanswered", 0))
        rows.append(("state of the chain", f"{left:,} devices still without an answer" if left
                     else "every device has an answer"))
        rows += [(f"state of {o}", s) for o, s in zip(steps["op_id"], steps["state"], strict=True)]
    elif history.get("state"):
        rows.append(("journal state", history["state"]))
    if request:
        if "rate_per_second" in request:  # journals written before the option was named rate
            request = {**request, "rate": request["rate_per_second"]}
        for k in ("chunk_size", "canary_chunks", "concurrency", "rate", "timeout",
                  "attempt_timeout", "parent_op_id", "relation"):
            if request.get(k) not in (None, 0) or k == "chunk_size":
                rows.append((k.replace("_", " "), request.get(k)))
        retry = request.get("retry") or {}
        if retry:
            rows.append(("retry policy", f"{retry.get('attempts')} attempts per chunk, back-off from "
                         f"{retry.get('backoff')} s; retried: {', '.join(retry.get('retry_on') or []) or 'nothing'}; "
                         f"unanswered chunks re-sent: {'yes' if retry.get('resend_unanswered') else 'no'}"))
    else:
        rows.append(("chunking and retry", "not recorded (the journal is off, or has no record of this operation)"))
    return _section("request", _kv(rows))


def _policy(request: dict[str, Any] | None) -> str:
    if request is None:
        return _section("policy", "<p class='note'>The rollout policy was not recorded for this result.</p>")
    ro = request.get("rollout")
    if not ro:
        return _section("policy", "<p>No rollout policy: every chunk was sent as fast as the window of "
                                  f"{_e(request.get('concurrency'))} requests in flight allowed, with no canary "
                                  "and no abort criteria.</p>")
    rows = [(k.replace("_", " "), v) for k, v in ro.items() if k != "describe" and v is not None]
    return _section("policy", f"<p><b>{_e(ro.get('describe'))}</b></p>{_kv(rows)}")


def _timeline(r: BatchResult) -> str:
    table = chunks(r).reset_index()
    if table.empty:
        return _section("timeline", "<p>No chunk was planned.</p>")
    t0 = table["sent_at"].min()
    img = _png(_timeline_figure(r, table)) if table["sent_at"].notna().any() else ""
    show = table.head(MAX_CHUNK_ROWS).copy()
    for col in ("sent_at", "answered_at"):
        show[col] = [f"{(v - t0).total_seconds():.3f}" if v is not None and v == v and t0 == t0 else ""
                     for v in show[col]]
    show = show.rename(columns={"sent_at": "sent (s after first)", "answered_at": "answered (s)"})
    more = f"<p class='note'>{len(table) - MAX_CHUNK_ROWS:,} more chunks not listed.</p>" if len(table) > MAX_CHUNK_ROWS else ""
    first = f"<p>First request sent {_e(str(t0))}.</p>" if t0 == t0 else "<p>No chunk was sent.</p>"
    return _section("timeline", first + img + _table(show) + more)


def _outcomes(r: BatchResult, fleet: pd.DataFrame | None) -> str:
    body = _table(r.summary().reset_index())
    by = None
    if fleet is not None:
        by = "product_name" if "product_name" in fleet.columns else None
    try:
        body += _png(r.plot(by=by, fleet=fleet))
    except Exception as e:  # noqa: BLE001 - a chart must never cost the evidence
        body += f"<p class='note'>chart not drawn: {_e(type(e).__name__)}</p>"
    if fleet is not None:
        for col, title in (("product_name", "By product"), ("parent_device_name", "By gateway (parent device)")):
            if col in fleet.columns:
                body += f"<h3>{title}</h3>" + _table(r.by(col, fleet).head(15).reset_index())
    else:
        body += ("<p class='note'>By product and by gateway need the fleet listing: "
                 "<code>res.report(path, verify=link)</code> or <code>romakit report OP --verify</code>.</p>")
    return _section("outcomes", body)


def _failures(r: BatchResult) -> str:
    bad = r.failures()
    rank = {"failed": 0, "unknown": 1, "skipped": 2}  # what the service said no to first; never-sent last
    bad = bad.iloc[bad["outcome"].astype(object).map(rank).argsort(kind="stable")]
    if bad.empty:
        return _section("failures", "<p>None: every device succeeded.</p>")
    id_col = "request_id" if bad["request_id"].notna().any() or not bad["event_id"].notna().any() else "event_id"
    quote = (bad.groupby(id_col, observed=True).size().rename("devices not ok").sort_values(ascending=False)
             .reset_index())
    cols = ["device_id", "device_name", "outcome", "error_code", "error_msg", "chunk", "attempts", id_col]
    body = f"<p>{len(bad):,} devices did not succeed. The {id_col.replace('_', ' ')}s to quote to Huawei support:</p>"
    body += _table(quote.head(100)) if len(quote) else f"<p class='note'>no {id_col} was recorded for them.</p>"
    body += _table(bad[cols].head(MAX_FAILURE_ROWS))
    if len(bad) > MAX_FAILURE_ROWS:
        body += f"<p class='note'>{len(bad) - MAX_FAILURE_ROWS:,} more not listed (export the result as CSV).</p>"
    return _section("failures", body)


def _snapshot(r: BatchResult) -> str:
    """A deletion's devices as its snapshot recorded them (a restore's: what it re-created)."""
    import pandas as pd

    effect = OPERATIONS[r.operation].expected if r.operation in OPERATIONS else None
    if effect not in ("gone", "restored"):
        return ""  # only a deletion (and its restore) has a snapshot
    restore = effect == "restored"
    records = (r.inputs if restore else r.snapshot) or {}
    if not records:
        what = ("No snapshot: this deletion ran without one (keep_snapshot=False, no journal, or a romakit before "
                "snapshots), so romakit cannot restore it." if not restore else
                "The records this restore sent are not held by this result (rebuilt from the journal): see its deletion's report.")
        return _section("snapshot", f"<p class='note'>{what}</p>")
    out = r.frame[["device_id", "outcome"]].astype(object).copy()
    for col, link_key, child_key in SNAPSHOT_COLUMNS:
        out[col] = [(records.get(str(d)) or {}).get(link_key if (records.get(str(d)) or {}).get("kind") == "link"
                                                     else child_key) for d in out["device_id"]]
    out = out[[str(d) in records for d in out["device_id"]]]
    kinds = {str(v.get("kind")) for v in records.values()}
    if restore:
        body = (f"<p>{len(out):,} devices re-created from the snapshot of deletion <code>{_e(r.parent_op_id)}</code>"
                " (their records below).</p>")
    else:
        undo = ("children come back whole, with their own device id, through their gateway" if kinds == {"child"}
                else "LINK devices come back with a new id, client id and secret: the field device needs its "
                     "secret reset")
        body = (f"<p>{len(out):,} devices as read just before their chunk was sent (never a secret). "
                f"<code>rk.restore(op_id, client)</code> or <code>romakit restore OP</code> re-creates them: {undo}; "
                "their data history, shadow and messages are not restored.</p>")
    shown = out.head(MAX_FAILURE_ROWS)
    body += _table(pd.DataFrame(shown).reset_index(drop=True))
    if len(out) > MAX_FAILURE_ROWS:
        body += f"<p class='note'>{len(out) - MAX_FAILURE_ROWS:,} more not listed.</p>"
    return _section("snapshot", body)


def _verify(checked: pd.DataFrame | None) -> str:
    if checked is None:
        return _section("verify", "<p class='note'>Not verified: the service's <i>success</i> is a claim. "
                                  "<code>res.report(path, verify=link)</code> or <code>romakit report OP "
                                  "--verify</code> re-reads the fleet and checks each device.</p>")
    ok = checked["outcome"] == SUCCESS
    v = checked.loc[ok, "verified"]
    n_true, n_false = int(v.eq(True).sum()), int(v.eq(False).sum())
    body = (f"<p>The fleet was listed again at {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M:%S} UTC. Of "
            f"{int(ok.sum()):,} devices the service reported as successful, <b>{n_true:,} verified</b>, "
            f"<b>{n_false:,} contradicted</b>, {int(v.isna().sum()):,} undecided.</p>")
    body += _table(checked.groupby(["outcome", "expected", "observed"], observed=True).size().rename("devices").reset_index())
    wrong = checked[checked["verified"].eq(False)]
    if len(wrong):
        body += "<h3>Claimed but not holding</h3>" + _table(wrong.head(MAX_FAILURE_ROWS))
    return _section("verify", body)


def _follow(r: BatchResult, fol: Any) -> str:
    if fol is None:
        what = ("Not followed: whether the forced devices came back was not read. "
                "<code>res.report(path, follow=res.follow(link))</code> or <code>romakit follow OP</code>."
                if r.operation == "force_offline" else "Applies to a force-offline (its devices reconnect).")
        return _section("follow", f"<p class='note'>{what}</p>")
    s = fol.summary()
    body = (f"<p>Followed for {s['within_s']:g} s in {s['cycles']} reads ({s['requests']:,} requests): "
            f"<b>{s['back']:,} of {s['followed']:,} back</b> ({s['share_back']:.0%}), {s['not_back']:,} not back. "
            f"Back means logged in again after it was forced, by the service's timestamps.</p>")
    body += _kv([(k, v) for k, v in s.items() if k.startswith("p")]) + _png(fol.plot())
    st = fol.stragglers()
    if len(st):
        body += f"<h3>Not back ({len(st):,})</h3>" + _table(st.head(MAX_FAILURE_ROWS))
    return _section("follow", body)


def _around(r: BatchResult, events: pd.DataFrame | None) -> str:
    """What the fleet did around the operation: the watches' events (a timeline frame, read
    through its ``.timeline`` accessor, so this layer needs no timeline code): the headline,
    the chart with the operation shaded, the devices still down and the flapping ones."""
    if events is None:
        return _section("around", "<p class='note'>Not included: what the fleet did before and after comes from a "
                                  "watch's events (<code>rk.watch(link)</code>, <code>romakit watch</code>). "
                                  "<code>res.report(path, around=rk.timeline(around=res))</code>; "
                                  "<code>romakit report OP</code> includes it.</p>")
    d = events.timeline.digest()
    body = f"<p><b>{_e(d.headline())}</b></p>"
    if not len(events):
        return _section("around", body + "<p class='note'>No watch recorded an event in this window.</p>")
    body += _png(events.timeline.plot(top=15))
    for title, frame in d.tables(MAX_AROUND_ROWS)[1:]:  # the operations are on the chart and in the chain
        if len(frame):
            body += f"<h3>{_e(title)}</h3>" + _table(frame)
    return _section("around", body)


def _chain(r: BatchResult, history: History, why: str = "") -> str:
    chain = history.get("chain")
    if chain is None or len(chain) == 0:
        why = why or "The journal has no record of this operation: only this operation is known."
        return _section("chain", f"<p class='note'>{why}</p>")
    cols = [c for c in ("op_id", "relation", "parent_op_id", "requested", *OUTCOMES, "state", "stopped",
                        "created_at", "finished_at") if c in chain.columns]
    show = chain[cols].copy()
    for col in ("created_at", "finished_at"):
        if col in show:
            show[col] = show[col].dt.strftime("%Y-%m-%d %H:%M:%S")
    steps = getattr(r, "steps", None)
    if steps is not None:  # how many devices each step has the latest word on
        settled = dict(zip(steps["op_id"], steps["settled"], strict=True))
        show.insert(1, "devices settled here", [settled.get(str(o), "") for o in show["op_id"]])
        mark = {str(o) for o in steps["op_id"]}
    else:
        mark = set(str(r.op_id).split("+"))
    show.insert(0, "", ["this report" if str(o) in mark else "" for o in show["op_id"]])
    return _section("chain", f"<p>{len(chain)} operation(s) in this family, oldest first.</p>" + _table(show))


# -- helpers -------------------------------------------------------------------------------
def _e(v: Any) -> str:
    return html.escape("" if v is None else str(v))


def _kv(rows: list[tuple[str, Any]]) -> str:
    return "<table class='kv'>" + "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows) + "</table>"


def _table(frame: pd.DataFrame) -> str:
    shown = frame.astype(object).where(frame.notna(), "")
    return shown.to_html(index=False, border=0, escape=True)


def _when(epoch: float) -> str:
    return dt.datetime.fromtimestamp(float(epoch), dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return f"<p><img alt='chart' src='data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}'></p>"


def _timeline_figure(r: BatchResult, table: pd.DataFrame) -> Any:
    import pandas as pd
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    worst = r.frame.groupby(["op_id", "chunk"], observed=True)["outcome"].agg(
        lambda s: next((o for o in ("unknown", "failed", "skipped") if (s == o).any()), SUCCESS))
    t0 = table["sent_at"].min()
    n = len(table)
    fig = Figure(figsize=(9, min(1.6 + 0.09 * n, 7)), layout="constrained")
    ax = fig.add_subplot()
    end_default = (table["answered_at"].max() - t0).total_seconds() if table["answered_at"].notna().any() else 0.0
    rows = zip(table["op_id"], table["chunk"], table["sent_at"], table["answered_at"], strict=True)
    for i, (op_id, chunk, sent_at, answered_at) in enumerate(rows):
        if pd.isna(sent_at):
            continue
        start = (sent_at - t0).total_seconds()
        end = max(end_default, start) if pd.isna(answered_at) else (answered_at - t0).total_seconds()
        colour = COLOURS[worst.get((op_id, chunk), SUCCESS)]
        ax.broken_barh([(start, max(end - start, 0.002))], (i - 0.4, 0.8), color=colour)
    ax.set_xlabel("seconds after the first request (bar: sent -> answered; colour: the chunk's worst outcome)")
    ax.set_ylabel("chunk")
    ax.invert_yaxis()
    ax.legend(handles=[Patch(color=COLOURS[o], label=o) for o in OUTCOMES], ncols=4, fontsize=8, loc="lower right")
    ax.spines[["top", "right"]].set_visible(False)
    return fig
