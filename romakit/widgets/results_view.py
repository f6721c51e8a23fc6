"""``ResultsView``: what a batch operation did: summary, failures, a chart, retry, restore, export.

It shows one :class:`~romakit.BatchResult` at a time and keeps the ones it has
shown (``view.results``), so a retry appears linked to the operation it retried.
*Retry*, *Resume* and *Restore* (after a deletion: re-create what it removed, from its
snapshot) send nothing themselves: they stage a preview in the action panel
(``view.panel``: the one of ``rk.console`` or the ``ActionPanel`` given
``results=view``; without one, the view makes its own, below it), which runs only after
its confirm box and blast-radius guard, like any other run. ``view.wait(timeout)``
waits for that run.
"""

from __future__ import annotations

import html
import io
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from romakit.outcomes import COLOURS
from romakit.paths import export_path, exports
from romakit.widgets import _itables
from romakit.widgets._base import Widget
from romakit.widgets.restore_button import RestoreControl

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from romakit.results import BatchResult

log = logging.getLogger("romakit.widgets")

#: result columns shown in the failures table
FAILURE_COLUMNS = ("device_id", "device_name", "outcome", "error_code", "error_msg", "chunk", "attempts", "request_id", "event_id")
#: the itables options of the failures table
TABLE_OPTIONS = {"maxBytes": 2**21, "showIndex": False}


class ResultsView(Widget):
    """Summary table, failures table, chart, retry and resume buttons, and CSV/Parquet/
    evidence-report export.

    ``target`` is the client the operation ran on (needed by *Retry*); ``fleet`` an
    optional device frame (``link.devices()``) so the chart can split by product.
    """

    def __init__(self, result: BatchResult | None = None, target: Any = None, *, fleet: pd.DataFrame | None = None) -> None:
        self.target = target
        self.fleet = fleet
        self.result: BatchResult | None = None
        #: every result shown here, oldest first (retries follow what they retried)
        self.results: list[BatchResult] = []
        self.error: BaseException | None = None
        self.message = ""
        #: the ActionPanel that runs this view's retries and resumes (made on first need)
        self.panel: Any = None
        self._default_path = ""
        #: the file the last export button wrote
        self.last_export: Path | None = None
        #: the last follow of the shown result (a Follow), and the thread reading it
        self.followed: Any = None
        self._follow_thread: threading.Thread | None = None

        self.header = w.HTML("<i>No result yet.</i>")
        self.summary = w.HTML()
        self.failures = _itables.new_table(None, **TABLE_OPTIONS)
        # hidden until there is a chart: an Image without a value draws a broken-image icon
        self.chart = w.Image(format="png", layout=w.Layout(max_width="100%", height="auto", object_fit="contain",
                                                           display="none"))
        self.history = w.HTML()
        self.retry_button = w.Button(description="Retry transient failures", icon="redo", disabled=True,
                                     layout=w.Layout(width="auto"))
        self.resume_button = w.Button(description="Resume", icon="forward", disabled=True, layout=w.Layout(width="auto"),
                                      tooltip="preview sending the devices that never got an answer")
        #: the Restore button (after a deletion: re-create what it removed, from its snapshot)
        self.restorer = RestoreControl(self)
        self.restore_button = self.restorer.button
        self.panel_box = w.VBox()
        self.follow_button = w.Button(description="Follow", icon="refresh", disabled=True, layout=w.Layout(width="auto"),
                                      tooltip="after a force-offline: read which forced devices came back, and when")
        self.follow_within = w.Text(value="10m", description="within", layout=w.Layout(width="160px"))
        self.follow_every = w.Text(value="5s", description="every", layout=w.Layout(width="160px"))
        self.follow_status = w.HTML()
        self.follow_chart = w.Image(format="png", layout=w.Layout(max_width="100%", height="auto", display="none"))
        self.stragglers = w.HTML()
        self.path = w.Text(description="Export to", placeholder="file path", layout=w.Layout(width="420px"))
        self.csv_button = w.Button(description="CSV", icon="download")
        self.parquet_button = w.Button(description="Parquet", icon="download")
        self.report_button = w.Button(description="Evidence report", icon="file-text", layout=w.Layout(width="auto"),
                                      tooltip="one self-contained HTML file: request, policy, chunks, failures, chain")
        self.where = w.HTML(f"<small>a name without a folder goes to romakit's exports folder <code>"
                            f"{html.escape(str(exports()))}</code> (ROMAKIT_HOME moves it), not beside the notebook"
                            "</small>")
        #: a link that downloads the last report through the browser
        self.download = w.HTML()
        self.status = w.HTML()

        self.retry_button.on_click(lambda _b: self.retry())
        self.resume_button.on_click(lambda _b: self.resume())
        self.follow_button.on_click(lambda _b: self.start_follow())
        self.csv_button.on_click(lambda _b: self._export_clicked("csv"))
        self.parquet_button.on_click(lambda _b: self._export_clicked("parquet"))
        self.report_button.on_click(lambda _b: self._export_clicked("html"))

        self.widget = w.VBox(
            [
                self.header,
                self.summary,
                self.chart,
                w.Accordion(children=[self.failures], titles=("Failures",)),
                w.HBox([self.retry_button, self.resume_button, self.restore_button]),
                self.panel_box,
                w.HBox([self.follow_button, self.follow_within, self.follow_every]),
                self.follow_status, self.follow_chart, self.stragglers,
                w.HBox([self.path, self.csv_button, self.parquet_button, self.report_button]),
                self.where,
                self.status,
                self.download,
                self.history,
            ]
        )
        self.widget.add_class("rk-results")
        if result is not None:
            self.show(result)

    # -- showing ---------------------------------------------------------------------------
    def show(self, result: BatchResult, target: Any = None) -> None:
        """Show ``result`` (and remember it in ``results``); ``target`` is the client it
        ran on, used by *Retry* (kept from before when not given)."""
        if target is not None:
            self.target = target
        self.result = result
        if not self.results or self.results[-1] is not result:
            self.results.append(result)
        c = result.counts
        parts = ", ".join(
            f"<span style='color:{COLOURS.get(o, '#000')}'>{n:,} {o}</span>" for o, n in c.items() if n
        ) or "no devices"
        parent = getattr(result, "parent_op_id", None)
        rel = f" ({_relation(result)} of <code>{html.escape(str(parent))}</code>)" if parent else ""
        stop = f"<br><b>Stopped:</b> {html.escape(str(result.stopped))}" if result.stopped else ""
        self.header.value = (
            f"<b>{html.escape(result.operation)}</b> on <code>{html.escape(str(result.target))}</code>, "
            f"op <code>{html.escape(result.op_id)}</code>{rel}: {len(result):,} devices: {parts}{stop}"
        )
        self.summary.value = shown(result.summary().reset_index()).to_html(index=False)
        fail = result.failures()
        cols = [col for col in FAILURE_COLUMNS if col in fail.columns and (col not in ("request_id", "event_id") or fail[col].notna().any())]
        _itables.show(self.failures, shown(fail[cols].reset_index(drop=True)), **TABLE_OPTIONS)
        self.chart.value = _png(self._figure(result))
        self.chart.layout.display = ""
        self.status.value = self.download.value = ""  # an export error or link of an older result is stale now
        self.message = ""
        n_retry = len(result.retry_ids())
        self.retry_button.description = f"Retry transient failures ({n_retry:,})"
        self.retry_button.disabled = n_retry == 0
        n_resume = c["unknown"] + c["skipped"]
        self.resume_button.description = f"Resume ({n_resume:,} without an answer)"
        self.resume_button.disabled = n_resume == 0
        self.restorer.update(result)
        if not self.path.value or self.path.value == self._default_path:
            self._default_path = str(exports() / f"romakit-{result.operation}-{result.op_id}")
            self.path.value = self._default_path
        self.history.value = _history_html(self.results)
        self.followed = None
        self.follow_status.value = self.stragglers.value = ""
        self.follow_chart.layout.display = "none"
        self.follow_button.disabled = result.operation != "force_offline" or not c["success"] or self.target is None

    # -- follow: who came back ------------------------------------------------------------------
    def start_follow(self) -> bool:
        """Follow the shown force-offline's forced devices in the background (``within`` and
        ``every`` from their boxes); the curve and the devices not back are shown as they
        come. False (and the reason said) when it cannot start."""
        res = self.result
        if res is None or res.operation != "force_offline" or self.target is None:
            return self._say("Follow needs a force-offline result and the client it ran on (target=)", error=True)
        if self._follow_thread is not None and self._follow_thread.is_alive():
            return self._say("already following", error=True)
        from romakit.results.follow import follow, seconds

        try:
            within, every = seconds(self.follow_within.value, "within"), seconds(self.follow_every.value, "every")
        except Exception as e:  # noqa: BLE001 - said to the user
            return self._say(str(e), error=True)
        total = res.counts["success"]

        def cycle(state: Any) -> None:
            back = total - len(state.pending)
            self.follow_status.value = f"following: {back:,} of {total:,} back so far"

        def run() -> None:
            try:
                fol = follow(res, self.target, within=within, every=every, on_cycle=cycle)
            except Exception as e:  # noqa: BLE001 - shown to the user
                self.follow_status.value = f"<span style='color:#c62828'>follow failed: {html.escape(str(e))}</span>"
                return
            if self.result is res:
                self._show_follow(fol)

        self.follow_button.disabled = True
        self.follow_status.value = f"following {total:,} forced devices for {within:g} s..."
        self._follow_thread = threading.Thread(target=run, name="romakit-follow", daemon=True)
        self._follow_thread.start()
        return True

    def wait_follow(self, timeout: float | None = None) -> bool:
        """Block until the follow started by the button is over (True) or ``timeout`` passed."""
        t = self._follow_thread
        if t is None:
            return True
        t.join(timeout)
        return not t.is_alive()

    def _show_follow(self, fol: Any) -> None:
        self.followed = fol
        s = fol.summary()
        pct = "" if s["p50_s"] is None else f"; time to return p50 {s['p50_s']} s, p90 {s['p90_s']} s, p99 {s['p99_s']} s"
        self.follow_status.value = (f"<b>{s['back']:,} of {s['followed']:,} back</b> within "
                                    f"{s['within_s']:g} s, {s['not_back']:,} not back{pct}")
        self.follow_chart.value = _png(fol.plot())
        self.follow_chart.layout.display = ""
        st = fol.stragglers()
        self.stragglers.value = ("<b>Not back</b>" + shown(st.head(200)).to_html(index=False)) if len(st) else ""
        self.follow_button.disabled = False

    def _figure(self, result: BatchResult) -> Any:
        plot = getattr(result, "plot", None)
        if callable(plot):
            fleet = self.fleet
            try:
                if fleet is not None and "product_name" in fleet.columns:
                    return plot(by="product_name", fleet=fleet)
                if getattr(result, "snapshot", None):  # a deletion names its devices from its snapshot
                    return plot(by="product_name")
                return plot()
            except Exception:  # noqa: BLE001 - fall back to the plain outcome bars
                log.debug("result.plot() failed; drawing outcome bars", exc_info=True)
        return _outcome_bars(result)

    # -- retry and resume: staged in the action panel ---------------------------------------
    def _panel(self) -> Any:
        if self.panel is None and self.target is not None:
            from romakit.widgets.action import ActionPanel

            self.panel = ActionPanel(self.target, None, results=self)
            self.panel_box.children = (self.panel.widget,)
        return self.panel

    def retry(self) -> bool:
        """Stage a retry of the shown result's transient failures in the action panel
        (preview shown; Run there sends it after the confirm and the guard). False if refused."""
        res = self.result
        if res is None:
            return self._say("no result to retry", error=True)
        if not res.retry_ids():
            return self._say("nothing to retry: no failure with a transient cause", error=True)
        panel = self._aimed_panel("retry")
        if panel is None:
            return False
        if panel.stage_retry(res) is None:
            return self._say(f"retry refused: {panel.message}", error=True)
        return self._say(f"retry of {len(res.retry_ids()):,} devices previewed in the action panel: "
                         "confirm there and press Run")

    def _aimed_panel(self, what: str) -> Any:
        """The action panel, pointed at this view's target; None (and the reason said) without one."""
        panel = self._panel()
        if panel is None:
            self._say(f"no client to {what} with: pass target= (the LinkClient or Gateway)", error=True)
            return None
        if self.target is not None and panel.target is not self.target and not panel.running:
            panel.set_target(self.target)
        return panel

    def resume(self) -> bool:
        """Stage a resume of the shown result's operation (its devices without an answer)."""
        res = self.result
        if res is None:
            return self._say("no result to resume", error=True)
        panel = self._aimed_panel("resume")
        if panel is None:
            return False
        if panel.stage_resume(res.op_id) is None:
            return self._say(f"resume refused: {panel.message}", error=True)
        return self._say("resume previewed in the action panel: confirm there and press Run")

    def stage_restore(self) -> Any:
        """Stage a restore of the shown deletion in the action panel (its preview; Run there
        sends it after the confirm and the guard): the Restore button's action."""
        return self.restorer.stage()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the panel's run is over (True) or ``timeout`` seconds pass (False)."""
        return self.panel.wait(timeout) if self.panel is not None else True

    # -- export --------------------------------------------------------------------------------
    def export(self, fmt: str, path: str | Path | None = None) -> Path:
        """Write the shown result as ``"csv"``, ``"parquet"`` or ``"html"`` (the evidence
        report, ``res.report()``) to ``path`` (default: the path box; the format's suffix is
        added when missing; a relative path is under romakit's exports folder,
        :func:`romakit.paths.exports`, made when missing). Any other directory must exist: a
        typo is not turned into new folders. Returns the absolute path written."""
        if fmt not in ("csv", "parquet", "html"):
            raise ValueError(f"fmt must be 'csv', 'parquet' or 'html', got {fmt!r}")
        if self.result is None:
            raise ValueError("no result to export")
        raw = str(path if path is not None else self.path.value).strip()
        if not raw:
            raise ValueError("no export path given")
        out = export_path(raw).resolve()
        if out.is_dir():  # never written beside it as <dir>.csv
            raise ValueError(f"{out} is a directory: give a file name in it")
        if out.suffix.lower() != f".{fmt}":
            out = out.with_name(out.name + f".{fmt}")
        if not out.parent.is_dir():
            raise FileNotFoundError(f"the directory {out.parent} does not exist (create it first, or fix the path)")
        if fmt == "html":
            return self.result.report(out, fleet=self.fleet, follow=self.followed, around=_around(self.result))
        writer = getattr(self.result, f"to_{fmt}", None)
        if callable(writer):
            writer(out)
        elif fmt == "csv":
            self.result.frame.to_csv(out, index=False)
        else:
            self.result.frame.to_parquet(out, index=False)
        return out

    def _export_clicked(self, fmt: str) -> None:
        try:
            out = self.export(fmt)
        except Exception as e:  # noqa: BLE001 - shown to the user
            self._say(f"export failed: {type(e).__name__}: {e}", error=True)
            return
        self.last_export = out
        if fmt == "html":
            import base64

            data = base64.b64encode(out.read_bytes()).decode()
            self.download.value = (f"<a download='{html.escape(out.name)}' href='data:text/html;base64,{data}' "
                                   f"style='font-weight:600'>&#x2B07; Download {html.escape(out.name)} "
                                   f"({out.stat().st_size / 1024:,.0f} KB)</a>")
            self._say(f"wrote the evidence report to {out}")
            return
        self._say(f"wrote {len(self.result or []):,} rows to {out}")

    def __repr__(self) -> str:
        return f"<ResultsView: {self.result!r}>" if self.result is not None else "<ResultsView: no result>"


def _around(result: BatchResult) -> pd.DataFrame | None:
    """The watches' events around ``result`` for its report (``rk.timeline(around=)``);
    None when its journal cannot say (the report then says how to add them)."""
    from romakit.timelines import around

    try:
        return around(result)
    except Exception:  # noqa: BLE001 - the report is written without that section
        log.debug("no events around %s for its report", result.op_id, exc_info=True)
        return None


def _outcome_bars(result: BatchResult) -> Any:
    """Devices per outcome as a small bar chart (a Figure, no pyplot state)."""
    from matplotlib.figure import Figure

    c = result.counts
    fig = Figure(figsize=(4.5, 2.2), layout="constrained")
    ax = fig.add_subplot()
    ax.barh(list(c), list(c.values()), color=[COLOURS.get(o, "#888") for o in c])
    ax.invert_yaxis()
    ax.set_xlabel("devices")
    ax.set_title(f"{result.operation} (op {result.op_id})", fontsize=10)
    return fig


def _png(fig: Any) -> bytes:
    fig = getattr(fig, "figure", fig)  # an Axes gives its Figure
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    import sys

    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        plt.close(fig)  # a pyplot figure would otherwise also be drawn below the cell
    return buf.getvalue()


def shown(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` as a table shows it: a missing value empty (never ``NaN``), floats rounded
    (``*_ms`` to 0.1 ms, others to 3 places); the result itself keeps every value."""
    import pandas as pd

    out = frame.copy()
    for col in out.columns:
        s = out[col]
        if pd.api.types.is_float_dtype(s):
            s = s.round(1 if str(col).endswith("_ms") else 3)
        out[col] = s.astype(object).where(s.notna(), "")
    return out


def _relation(result: Any) -> str:
    """What a result with a parent is to it: a restore, else a retry (or resume)."""
    return "restore" if str(result.operation).startswith("restore_") else "retry"


def _history_html(results: list) -> str:
    if len(results) < 2:
        return ""
    items = []
    for r in results:
        c = r.counts
        parts = ", ".join(f"{n:,} {o}" for o, n in c.items() if n)
        parent = getattr(r, "parent_op_id", None)
        rel = f" &larr; {_relation(r)} of <code>{html.escape(str(parent))}</code>" if parent else ""
        items.append(f"<li><code>{html.escape(r.op_id)}</code>{rel}: {parts}</li>")
    return "<b>Operations shown here</b><ul>" + "".join(items) + "</ul>"
