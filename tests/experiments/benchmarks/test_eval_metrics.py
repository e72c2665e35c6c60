"""The evaluator benchmark runs end to end at a small scale (a subprocess, as a user runs it).

It prints figures, never asserts speeds; this checks that it prints its table and that the
blocked evaluator and the SAKE-style per-query one agree on the queries both evaluated.
"""
import os
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def test_eval_metrics_benchmark_agrees_with_sake_style():
  result = subprocess.run(
      [sys.executable, "-m", "experiments.benchmarks.eval_metrics", "--scale=0.02",
       "--sake_queries=40", "--repeats=2", "--block_size=64"],
      cwd=REPO, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  out = result.stdout
  rows = [line for line in out.splitlines() if line.startswith("| ") and "---" not in line]
  assert any(r.startswith("| QuickDraw-30, ours | 1,846 x 1,083 |") for r in rows), out
  assert any(r.startswith("| Sketchy-25, ours | 305 x 342 |") and "median of 2" in r
             for r in rows), out
  assert re.search(r"Speed-up on Sketchy-25 \(target >= 100x\): \d+x wall", out), out
  ap, p100 = map(float, re.search(r"AP (\S+), P@100 (\S+) \(both rank", out).groups())
  assert ap < 1e-12 and p100 == 0.0  # The same float64 ranking: rounding of the sums only.
