r"""Where the JAX training step's time goes: a per-op profile of the `full` step, by op kind.

  python -m experiments.benchmarks.step_profile                  # ResNet-50, 32 x 112 px
  python -m experiments.benchmarks.step_profile --xla_convolutions     # the baseline

Runs the step of `full_step.py` under `jax.profiler` with XLA:CPU's per-op trace events on,
maps every executed op (a fusion or a library call) back to the compiled HLO, and sums the
time by kind (the fused computation's root: convolution, dot, transpose/copy, reduce,
reduce-window, select-and-scatter, elementwise ...) and by pass (forward or backward, from
JAX's op_name metadata: student forward, backward, EMA-teacher forward, the rest). Op times overlap
where XLA runs independent ops concurrently, so the shares are of the summed op time; the
step's wall time is printed beside them.
"""
import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_cpu_enable_xprof_traceme=true").strip()

import collections  # pylint: disable=g-import-not-at-top,wrong-import-position
import glob
import gzip
import json
import re
import tempfile
import time

from absl import app
from absl import flags
import jax

from experiments.benchmarks import full_step
from zsbir_jax.models import backbones

_DEPTH = flags.DEFINE_integer("depth", 50, "ResNet depth.")
_SHAPE = flags.DEFINE_string("shape", "32x112", "Batch x image size.")
_CLASSES = flags.DEFINE_integer("num_seen_classes", 100, "Seen classes (Sketchy-25: 100).")
_BASELINE = flags.DEFINE_bool("xla_convolutions", False,
                              "Profile the step with XLA's own convolutions throughout.")
_TOP = flags.DEFINE_integer("top", 12, "Also list this many most expensive single ops.")

_INSTRUCTION = re.compile(r"^\s*%?([\w.\-]+) = (\S+) (\w[\w\-]*)\((.*)$")
_CALLS = re.compile(r"calls=%?([\w.\-]+)")
_OP_NAME = re.compile(r'op_name="([^"]*)"')
_ROOT = re.compile(r"^\s*ROOT %?[\w.\-]+ = \S+ (\w[\w\-]*)\(")
_ELEMENTWISE = {"add", "subtract", "multiply", "divide", "maximum", "minimum", "select",
                "compare", "exp", "log", "rsqrt", "sqrt", "negate", "abs", "convert", "tanh",
                "broadcast", "and", "or", "power", "sign", "clamp", "bitcast", "iota", "pad",
                "slice", "concatenate", "reshape", "dynamic-slice", "dynamic-update-slice"}


def hlo_ops(hlo_text: str) -> dict[str, tuple[str, str]]:
  """{instruction name: (kind, op_name metadata)} of the compiled module's instructions.

  A fusion's kind and (when the fusion itself carries none) op_name are its root's.
  """
  roots, current = {}, None
  for line in hlo_text.splitlines():
    if not line.startswith(" ") and "{" in line:
      current = line.split()[0].lstrip("%")
    root = _ROOT.match(line)
    if root and current:
      op_name = _OP_NAME.search(line)
      roots[current] = (root.group(1), op_name.group(1) if op_name else "")
  ops = {}
  for line in hlo_text.splitlines():
    match = _INSTRUCTION.match(line)
    if not match:
      continue
    name, opcode = match.group(1), match.group(3)
    op_name = _OP_NAME.search(line)
    kind, op_name = opcode, op_name.group(1) if op_name else ""
    calls = _CALLS.search(line)
    if opcode == "fusion" and calls and calls.group(1) in roots:
      kind, root_op_name = roots[calls.group(1)]
      op_name = op_name or root_op_name
    ops[name] = (kind, op_name)
  return ops


def kind_of(kind: str) -> str:
  if kind in ("transpose", "copy"):
    return "transpose/copy"
  return "elementwise" if kind in _ELEMENTWISE else kind


def pass_of(kind: str, op_name: str) -> str:
  """Backward (JAX's transpose), student forward (jvp), EMA teacher forward, or the rest.

  XLA:CPU rewrites the weight gradients of the 3x3 and 7x7 convolutions into convolutions that
  carry no metadata; they are backward.
  """
  if "transpose(" in op_name or (kind == "convolution" and not op_name):
    return "backward"
  if "jvp(" in op_name:
    return "student forward"
  if "RetrievalModel" in op_name:
    return "teacher forward"
  return "losses, update, EMA" if op_name else "layout (no metadata)"


def profile(step: full_step.JaxStep) -> tuple[list[tuple[str, float]], float]:
  """[(executed op name, seconds)] of one step, and the step's wall seconds."""
  step.run()  # compiled and warm
  step.run()
  directory = tempfile.mkdtemp(prefix="zsbir_profile_")
  start = time.perf_counter()
  with jax.profiler.trace(directory, create_perfetto_trace=True):
    step.run()
  wall = time.perf_counter() - start
  trace_file = glob.glob(os.path.join(directory, "**", "*.trace.json.gz"), recursive=True)[0]
  with gzip.open(trace_file) as f:
    events = json.load(f)
  events = events["traceEvents"] if isinstance(events, dict) else events
  return [(e["name"], e.get("dur", 0) / 1e6) for e in events if e.get("ph") == "X"], wall


def main(argv):
  del argv
  batch_size, image_size = (int(v) for v in _SHAPE.value.split("x"))
  batch = full_step.pk_batch(batch_size, image_size, _CLASSES.value)
  arch = full_step.Arch(backbones.RESNET, _DEPTH.value)
  if _BASELINE.value:
    with full_step.xla_convolutions():
      step = full_step.jax_step(arch, batch, _CLASSES.value)
  else:
    step = full_step.jax_step(arch, batch, _CLASSES.value)
  ops = hlo_ops(step.compiled.as_text())
  events, wall = profile(step)
  by_kind, by_pass, singles = collections.Counter(), collections.Counter(), collections.Counter()
  by_pass_kind = collections.Counter()
  for name, seconds in events:
    if name not in ops:
      continue  # runtime bookkeeping (executor, thread pool, Python frames)
    kind, op_name = ops[name]
    by_kind[kind_of(kind)] += seconds
    by_pass[pass_of(kind, op_name)] += seconds
    by_pass_kind[(pass_of(kind, op_name), kind_of(kind))] += seconds
    singles[(name, kind, op_name)] += seconds
  total = sum(by_kind.values())
  print(f"ResNet-{_DEPTH.value} `full` step, batch {batch_size} at {image_size} px, "
        f"{'XLA' if _BASELINE.value else 'zsbir_jax CPU'} convolutions: "
        f"step wall {wall:.2f} s, summed op time {total:.2f} s")
  for title, counter in (("op kind", by_kind), ("pass", by_pass)):
    print(f"\n| {title} | seconds | share |\n|---|---|---|")
    for key, seconds in counter.most_common():
      print(f"| {key} | {seconds:.3f} | {100 * seconds / total:.1f}% |")
  kinds = [kind for kind, _ in by_kind.most_common(5)]
  print(f"\n| pass | {' | '.join(kinds)} |\n|---|{'---|' * len(kinds)}")
  for key, _ in by_pass.most_common():
    print(f"| {key} | " + " | ".join(f"{by_pass_kind[key, kind]:.3f}" for kind in kinds) + " |")
  print("\n| op | kind | pass | seconds | JAX op |\n|---|---|---|---|---|")
  for (name, kind, op_name), seconds in singles.most_common(_TOP.value):
    print(f"| {name} | {kind} | {pass_of(kind, op_name)} | {seconds:.3f} | {op_name[-70:]} |")


if __name__ == "__main__":
  app.run(main)
