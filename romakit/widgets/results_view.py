"""``ResultsView``: what a batch operation did: summary, failures, a chart, retry, export.

It shows one :class:`~romakit.BatchResult` at a time and keeps the ones it has
shown (``view.results``), so a retry appears linked to the operation it retried.
Retrying runs on a background thread like ``ActionPanel``; ``view.wait(timeout)``
blocks until it is over.
"""

from __future__ import annotations

import html
import io
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from romakit.operations import GATEWAY, client_kind
from romakit.outcomes import COLOURS
from romakit.widgets import _itables
from romakit.widgets._base import Widget, Worker

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from romakit.results import BatchResult

log = logging.getLogger("romakit.widgets")

#: result columns shown in the failures table
FAILURE_COLUMNS = ("device_id", "device_name", "outcome", "error_code", "error_msg", "chunk", "attempts", "request_id", "event_id")
#: the itables options of the failures table
TABLE_OPTIONS = {"maxBytes": 2**21, "showIndex": False}


class ResultsView(Widget):
    """Summary table, failures table, chart, a retry button and CSV/Parquet export.

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
        self._worker = Worker("romakit-retry")
        self._default_path = ""
        #: the file the last export button wrote
        self.last_export: Path | None = None

        self.header = w.HTML("<i>No result yet.</i>")
        self.summary = w.HTML()
        self.failures = _itables.new_table(None, **TABLE_OPTIONS)
        # hidden until there is a chart: an Image without a value draws a broken-image icon
        self.chart = w.Image(format="png", layout=w.Layout(max_width="100%", height="auto", object_fit="contain",
                                                           display="none"))
        self.history = w.HTML()
        self.retry_button = w.Button(description="Retry transient failures", icon="redo", disabled=True,
                                     layout=w.Layout(width="auto"))
        self.retry_progress = w.IntProgress(min=0, max=1, value=0, layout=w.Layout(width="300px", display="none"))
        self.path = w.Text(description="Export to", placeholder="file path", layout=w.Layout(width="420px"))
        self.csv_button = w.Button(description="CSV", icon="download")
        self.parquet_button = w.Button(description="Parquet", icon="download")
        self.report_button = w.Button(description="Evidence report", icon="file-text", layout=w.Layout(width="auto"),
                                      tooltip="one self-contained HTML file: request, policy, chunks, failures, chain")
        self.where = w.HTML(f"<small>relative paths are under <code>{html.escape(str(Path.cwd()))}</code></small>")
        #: a link that downloads the last report through the browser
        self.download = w.HTML()
        self.status = w.HTML()

        self.retry_button.on_click(lambda _b: self.retry())
        self.csv_button.on_click(lambda _b: self._export_clicked("csv"))
        self.parquet_button.on_click(lambda _b: self._export_clicked("parquet"))
        self.report_button.on_click(lambda _b: self._export_clicked("html"))

        self.widget = w.VBox(
            [
                self.header,
                self.summary,
                self.chart,
                w.Accordion(children=[self.failures], titles=("Failures",)),
                w.HBox([self.retry_button, self.retry_progress]),
                w.HBox([self.path, self.csv_button, self.parquet_button, self.report_button]),
                self.where,
                self.status,
                self.download,
                self.history,
            ]
        )
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
        rel = f" (retry of <code>{html.escape(str(parent))}</code>)" if parent else ""
        stop = f"<br><b>Stopped:</b> {html.escape(str(result.stopped))}" if result.stopped else ""
        self.header.value = (
            f"<b>{html.escape(result.operation)}</b> on <code>{html.escape(str(result.target))}</code>, "
            f"op <code>{html.escape(result.op_id)}</code>{rel}: {len(result):,} devices: {parts}{stop}"
        )
        self.summary.value = result.summary().reset_index().to_html(index=False, na_rep="")
        fail = result.failures()
        cols = [col for col in FAILURE_COLUMNS if col in fail.columns and (col not in ("request_id", "event_id") or fail[col].notna().any())]
        _itables.show(self.failures, fail[cols].reset_index(drop=True), **TABLE_OPTIONS)
        self.chart.value = _png(self._figure(result))
        self.chart.layout.display = ""
        self.status.value = self.download.value = ""  # an export error or link of an older result is stale now
        self.message = ""
        n_retry = len(result.retry_ids())
        self.retry_button.description = f"Retry transient failures ({n_retry:,})"
        self.retry_button.disabled = n_retry == 0 or self._worker.running
        if not self.path.value or self.path.value == self._default_path:
            self._default_path = f"romakit-{result.operation}-{result.op_id}"
            self.path.value = self._default_path
        self.history.value = _history_html(self.results)

    def _figure(self, result: BatchResult) -> Any:
        plot = getattr(result, "plot", None)
        if callable(plot):
            fleet = self.fleet
            try:
                if fleet is not None and "product_name" in fleet.columns:
                    return plot(by="product_name", fleet=fleet)
                return plot()
            except Exception:  # noqa: BLE001 - fall back to the plain outcome bars
                log.debug("result.plot() failed; drawing outcome bars", exc_info=True)
        return _outcome_bars(result)

    # -- retry -------------------------------------------------------------------------------
    def retry(self) -> bool:
        """Retry the shown result's transient failures in the background (False if refused)."""
        res = self.result
        if self._worker.running:
            return self._say("a retry is already running", error=True)
        if res is None:
            return self._say("no result to retry", error=True)
        ids = res.retry_ids()
        if not ids:
            return self._say("nothing to retry: no failure with a transient cause", error=True)
        if self.target is None:
            return self._say("no client to retry with: pass target= (the LinkClient or Gateway)", error=True)
        self.retry_button.disabled = True
        self.retry_progress.max = len(ids)
        self.retry_progress.value = 0
        self.retry_progress.layout.display = ""
        self._say(f"retrying {len(ids):,} devices of op {res.op_id}…")
        self._worker.start(lambda: self._retry_work(res, ids))
        return True

    def _retry_work(self, res: BatchResult, ids: list) -> None:
        def progress(done: int, total: int) -> None:
            self.retry_progress.max = max(total, 1)
            self.retry_progress.value = min(done, total)

        target = self.target
        try:
            if client_kind(target) == GATEWAY and callable(getattr(target, "connect", None)):
                target.connect()
            new = res.retry(target, progress=progress)
            self.error = None
            self.show(new)
            self._say(f"retry done: op {new.op_id} (retry of {res.op_id})")
        except Exception as e:  # noqa: BLE001 - shown to the user, kept in .error
            self.error = e
            self.retry_button.disabled = False
            self._say(f"the retry failed: {type(e).__name__}: {e}", error=True)
        finally:
            self.retry_progress.layout.display = "none"

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a running retry is over (True) or ``timeout`` seconds pass (False)."""
        return self._worker.wait(timeout)

    # -- export --------------------------------------------------------------------------------
    def export(self, fmt: str, path: str | Path | None = None) -> Path:
        """Write the shown result as ``"csv"``, ``"parquet"`` or ``"html"`` (the evidence
        report, ``res.report()``) to ``path`` (default: the path box; the format's suffix is
        added when missing; relative to the kernel's working directory). The directory must
        exist: a typo is not turned into new folders. Returns the absolute path written."""
        if fmt not in ("csv", "parquet", "html"):
            raise ValueError(f"fmt must be 'csv', 'parquet' or 'html', got {fmt!r}")
        if self.result is None:
            raise ValueError("no result to export")
        raw = str(path if path is not None else self.path.value).strip()
        if not raw:
            raise ValueError("no export path given")
        out = Path(raw).expanduser().resolve()
        if out.suffix.lower() != f".{fmt}":
            out = out.with_name(out.name + f".{fmt}")
        if not out.parent.is_dir():
            raise FileNotFoundError(f"the directory {out.parent} does not exist (create it first, or fix the path)")
        if fmt == "html":
            return self.result.report(out, fleet=self.fleet)
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


def _history_html(results: list) -> str:
    if len(results) < 2:
        return ""
    items = []
    for r in results:
        c = r.counts
        parts = ", ".join(f"{n:,} {o}" for o, n in c.items() if n)
        parent = getattr(r, "parent_op_id", None)
        rel = f" &larr; retry of <code>{html.escape(str(parent))}</code>" if parent else ""
        items.append(f"<li><code>{html.escape(r.op_id)}</code>{rel}: {parts}</li>")
    return "<b>Operations shown here</b><ul>" + "".join(items) + "</ul>"
