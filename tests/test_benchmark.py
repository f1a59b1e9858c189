"""The benchmark script runs end to end (tiny sizes); its figures are checked by reading them,
not by timed tests."""

import json
import subprocess
import sys

from conftest import ROOT


def test_benchmark_quick_writes_every_figure(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "benchmark.py"), "--quick", "--out", str(out), "--pytorch3d-max-faces", "1500"],
        capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(out.read_text())
    assert [row["pytorch3d_extrapolated"] for row in figures["cache"]] == [False, True]
    assert all(row["ours_s"] > 0 and row["speedup"] > 0 for row in figures["cache"] + figures["naive"])
    assert [row["precision"] for row in figures["step"]][0] == "float32"
    assert all(row["ratio"] > 0 for row in figures["step"]) and figures["run"]["peak_rss_gb"] > 0
    assert [row["long_range"] for row in figures["step"]][:2] == [True, False]  # the default step, then without the term
    assert len(figures["naive"]) == len(figures["step"])  # two meshes, and two steps, per precision
    assert "| cache build / view" in result.stdout  # the markdown table
