"""Fast structural checks of the stored notebooks (nbval runs them; this only reads them).

Every notebook has a papermill ``parameters`` cell, the python3 kernel, stored outputs
(tables and figures) from a clean top-to-bottom run, no error or stderr output, a reason
on every ``NBVAL_IGNORE_OUTPUT``, and none of the sandbox's secrets anywhere in its
outputs or sources (the secrets are recomputed from the seeds the notebooks use).
"""

from __future__ import annotations

import ast
import json
from functools import cache
from pathlib import Path

import pytest

from romakit.sim.fleet import Fleet
from romakit.sim.server import SimCredentials

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
EXPECTED = (
    "01_quick_start.ipynb",
    "02_pick_and_force_offline.ipynb",
    "03_gateway_child_deletion.ipynb",
    "04_fleet_investigation.ipynb",
    "05_training_faults.ipynb",
    "06_training_interrupted_runs.ipynb",
    "07_training_rollouts.ipynb",
    "08_connecting_to_your_account.ipynb",
    "09_investigate_an_incident.ipynb",
)
PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _code_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def _source(cell: dict) -> str:
    src = cell["source"]
    return src if isinstance(src, str) else "".join(src)


def _text(value: object) -> str:
    return value if isinstance(value, str) else "".join(value) if isinstance(value, list) else json.dumps(value)


def _outputs_text(nb: dict) -> str:
    """Every stored output as one string (all MIME types, stream text, error text)."""
    parts = []
    for cell in _code_cells(nb):
        for out in cell.get("outputs", []):
            if out["output_type"] == "stream":
                parts.append(_text(out["text"]))
            elif out["output_type"] == "error":
                parts.append(out.get("ename", "") + out.get("evalue", "") + "".join(out.get("traceback", [])))
            else:
                parts.extend(_text(v) for v in out.get("data", {}).values())
    return "\n".join(parts)


def _parameters(nb: dict) -> dict[str, object]:
    cells = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"expected one cell tagged 'parameters', found {len(cells)}"
    assert cells[0]["cell_type"] == "code"
    values = {}
    for node in ast.parse(_source(cells[0])).body:  # papermill needs plain assignments of literals
        assert isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name), (
            f"parameters cell: line {node.lineno} is not a plain `name = literal` assignment"
        )
        values[node.targets[0].id] = ast.literal_eval(node.value)
    return values


@cache
def _secrets(devices: int, seed: int) -> frozenset[str]:
    creds = SimCredentials.from_seed(seed)
    fleet = Fleet(devices=devices, seed=seed)
    gateways = {fleet.secret_of(g["client_id"]) for g in fleet.gateways()}
    return frozenset({creds.ak, creds.sk, creds.token, creds.password, *gateways})


def test_the_walkthroughs_are_all_there():
    names = {p.name for p in PATHS}
    assert set(EXPECTED) <= names, f"missing: {sorted(set(EXPECTED) - names)}"
    readme = (NOTEBOOKS / "README.md").read_text(encoding="utf-8")
    where_next = _source(_load(NOTEBOOKS / "01_quick_start.ipynb")["cells"][-3])
    assert where_next.startswith("## Where next")
    for name in names:
        assert name in readme, f"{name} is not listed in notebooks/README.md"
        number = name.split("_", 1)[0]
        title = _source(_load(NOTEBOOKS / name)["cells"][0]).splitlines()[0]
        assert title.startswith(f"# {number} · "), f"{name}: its title does not start with its number: {title!r}"
        if number != "01":
            assert f"**{name.removesuffix('.ipynb')}**" in where_next, f"01's 'where next' does not list {name}"
    assert sorted(n.split("_", 1)[0] for n in names) == [f"{i:02d}" for i in range(1, len(names) + 1)], (
        "the notebooks are numbered 01, 02, ... without a gap or a repeat")


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_notebook_structure(path: Path):
    nb = _load(path)
    assert nb["nbformat"] == 4
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    first = nb["cells"][0]
    assert first["cell_type"] == "markdown" and _source(first).startswith("# "), "start with a title in markdown"
    params = _parameters(nb)
    assert isinstance(params.get("devices"), int) and isinstance(params.get("seed"), int), (
        "the parameters cell sets the sandbox's `devices` and `seed`"
    )
    # Run All leaves everything usable: the clean-up is a button, pressed on purpose
    assert params.get("close_at_end") is False, "the parameters cell sets close_at_end = False"

    cells = _code_cells(nb)
    counts = [c.get("execution_count") for c in cells]
    assert None not in counts, "every code cell has been run (store the outputs of a full run)"
    assert counts == list(range(1, len(counts) + 1)), "outputs come from one clean top-to-bottom run"

    mimes: set[str] = set()
    for i, cell in enumerate(cells):
        src = _source(cell)
        for out in cell.get("outputs", []):
            assert out["output_type"] != "error", f"code cell {i} stored an error: {out.get('ename')}: {out.get('evalue')}"
            assert not (out["output_type"] == "stream" and out["name"] == "stderr"), (
                f"code cell {i} wrote to stderr: {_text(out['text'])[:200]!r}"
            )
            mimes.update(out.get("data", {}))
        if "NBVAL_IGNORE_OUTPUT" in src:
            line = next(ln for ln in src.splitlines() if "NBVAL_IGNORE_OUTPUT" in ln)
            reason = line.split("NBVAL_IGNORE_OUTPUT", 1)[1].lstrip(":- ").strip()
            assert len(reason) > 10, f"code cell {i}: say why its output is not compared"
    assert "text/html" in mimes, "no table stored"
    assert "image/png" in mimes, "no figure stored"
    last = cells[-1]
    assert "rk.clean_up(" in _source(last) and "now=close_at_end" in _source(last), "the last cell is the clean-up"
    shown = "".join(_text(o.get("data", {}).get("text/plain", "")) for o in last.get("outputs", []))
    assert "left running for you; press the button" in shown, f"the stored clean-up closed something: {shown!r}"


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_no_secret_in_notebook(path: Path):
    nb = _load(path)
    params = _parameters(nb)
    secrets = _secrets(params["devices"], params["seed"])
    outputs = _outputs_text(nb)
    sources = "\n".join(_source(c) for c in nb["cells"])
    for secret in secrets:
        assert secret not in outputs, f"a sandbox secret (…{secret[-4:]}) is stored in an output"
        assert secret not in sources, f"a sandbox secret (…{secret[-4:]}) is written in a cell"
    assert '"sk":' not in outputs and "'sk':" not in outputs, "looks like sb.describe() was displayed"
