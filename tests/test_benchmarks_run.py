"""Every benchmark still runs against today's code: each script, at a toy size, to its
end. Its figures mean nothing here (speed is measured by ``make bench`` on an idle
machine); this only keeps a script from rotting between sittings, as
``bench_journal.py`` did when the journal's chunk rows grew ``http_status``."""

from __future__ import annotations

import subprocess
import sys

import pytest
from support.cli import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

TOY = {
    "bench_journal.py": ["--chunks", "20", "--repeat", "1"],
    "bench_results.py": ["--rows", "5000", "--repeat", "1"],
    "bench_force_offline.py": ["--devices", "2000", "--latency-ms", "5", "--cpu-devices", "500"],
    "bench_listing.py": ["--devices", "3000", "--latency-ms", "5", "--no-sdk"],
    "bench_timeline.py": ["--events", "20000", "--devices", "500", "--repeat", "1"],
    "bench_follow.py": ["--fleet", "3000", "--forced", "1000", "--never", "0.01"],
    "bench_watch.py": ["--devices", "3000", "--changes", "100", "--repeat", "1"],
    "bench_snapshot.py": ["--link", "200", "--children", "30", "--repeat", "1"],
    "bench_rate_limit.py": ["--requests", "30"],
    "bench_sandbox.py": ["--sizes", "2000", "--pages", "3", "--no-baseline"],
    "bench_mqtt_delete.py": ["--children", "300"],
    "bench_fanout.py": ["--gateways", "3", "--children", "20", "--brokers", "embedded"],
}
# bench_picker.py is left out: JupyterLab in Chromium at any size (the browser tests
# start the same Lab through tests/support/browser.py, which it imports).


@pytest.mark.parametrize("script", sorted(TOY))
def test_the_benchmark_runs_at_a_toy_size(script, tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "ROMAKIT_HOME": str(tmp_path / "home"),
           "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *TOY[script]], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-3000:])
    assert done.stdout.strip(), "a benchmark prints its figures"
