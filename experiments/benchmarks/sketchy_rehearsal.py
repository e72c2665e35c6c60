r"""A rehearsal at Sketchy size: the whole `sketchy25` path on a synthetic tree, timed.

  python -m experiments.benchmarks.sketchy_rehearsal --root=/tmp/rehearsal \
      --workdir=/tmp/rehearsal_runs

Runs, each as the command a user runs (a subprocess, its wall time and peak resident memory
measured), on the tree of experiments.make_synthetic_sketchy (75,471 sketches, 73,002 photos at
256 px in SAKE's layout; written first if <root>/Sketchy is missing):

  generate   experiments.make_synthetic_sketchy
  check      experiments.check_dataset --mode=full, then --mode=quick
  pipeline   the training input (sampler, decode, augment, 224 px, to the devices) in this
             process, images/s for each of --pipeline_workers
  train      experiments.train with experiments/configs/sketchy25.py (--recipe, ResNet-50 at
             --width), stopped after --train_steps (train.stop_after_steps); the time to its
             first step is read from its log. Then the same command with one step more: a
             restart that resumes (the data check remembered, the checkpoint restored).
  evaluate   experiments.evaluate --which=latest: embeds the 15,229 queries and the 17,101
             gallery photos and evaluates; then again from the stored embeddings alone, which
             separates the evaluation from the extraction.

and prints each figure as it is measured (all kept in <workdir>/rehearsal.json). The network is
ResNet-50 at `--width` (default 0.25) so that the rehearsal fits an afternoon on a 2-core CPU;
the data path (every image decoded, augmented and batched at 224 px) is full size whatever the
width.
`experiments.benchmarks.embed` gives the full-width forward images/s to scale the extraction.
"""
import json
import os
import re
import subprocess
import sys
import time

from absl import app
from absl import flags
import jax

from experiments.benchmarks import timing
from experiments.configs import sketchy25 as sketchy25_config
from zsbir_jax.data import synthetic_sketchy

_ROOT = flags.DEFINE_string("root", None, "Data root of the synthetic Sketchy tree (written "
                            "there if <root>/Sketchy is missing).", required=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where the training run and evaluations go "
                               "(must not hold a run of another configuration).", required=True)
_PHASES = flags.DEFINE_list("phases", ["generate", "check", "pipeline", "train", "evaluate"],
                            "Phases to run, in this order.")
_RECIPE = flags.DEFINE_string("recipe", "bkd", "Training recipe; bkd needs no knowledge table "
                              "(preparing one runs the teacher over 55,901 photos).")
_WIDTH = flags.DEFINE_float("width", 0.25, "ResNet-50 channel multiplier of the train and "
                            "evaluate phases.")
_TRAIN_STEPS = flags.DEFINE_integer("train_steps", 4, "Steps of the training run.",
                                    lower_bound=1)
_WORKERS = flags.DEFINE_integer("workers", 2, "Data-loading workers of training and evaluation.")
_PIPELINE_WORKERS = flags.DEFINE_list("pipeline_workers", ["1", "2", "4"],
                                      "Worker counts of the pipeline phase.")
_PIPELINE_BATCHES = flags.DEFINE_integer("pipeline_batches", 30, "Timed batches per count.")

_SPLIT = synthetic_sketchy.SPLIT.name


def run_command(argv: list[str], log_path: str, first_line: str | None = None) -> dict:
  """Runs `python -m ...argv`, its output to `log_path`; wall seconds, peak RSS (MiB) and, if
  `first_line` (a regex) is given, the seconds until an output line first matched it."""
  start = time.perf_counter()
  matched = None
  with open(log_path, "w") as log:
    process = subprocess.Popen([sys.executable, "-m", *argv], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    for line in process.stdout:
      log.write(line)
      if first_line and matched is None and re.search(first_line, line):
        matched = time.perf_counter() - start
    _, status, usage = os.wait4(process.pid, 0)
  process.returncode = os.waitstatus_to_exitcode(status)
  if process.returncode:
    raise RuntimeError(f"{' '.join(argv)} exited with {process.returncode}; see {log_path}")
  result = {"seconds": time.perf_counter() - start, "peak_rss_mib": usage.ru_maxrss / 1024}
  if first_line:
    result["seconds_to_match"] = matched
  return result


def disk_mib(path: str) -> float:
  """Bytes of the files under `path` (links not followed), in MiB."""
  total = 0
  for directory, _, files in os.walk(path):
    total += sum(os.lstat(os.path.join(directory, f)).st_size for f in files)
  return total / 2**20


def train_argv(workdir: str, stop_after: int) -> list[str]:
  return ["experiments.train", f"--config=experiments/configs/sketchy25.py:recipe={_RECIPE.value}",
          f"--workdir={workdir}", f"--config.data.root={_ROOT.value}",
          f"--config.model.width={_WIDTH.value}", f"--config.data.workers={_WORKERS.value}",
          "--config.data.check=quick", "--config.train.log_every=1",
          f"--config.train.stop_after_steps={stop_after}"]


def pipeline_rates() -> dict[str, float]:
  """Images/s of the training input at 224 px for each worker count (in this process)."""
  rates = {}
  for workers in map(int, _PIPELINE_WORKERS.value):
    config = sketchy25_config.get_config(f"recipe={_RECIPE.value}")
    config.data.update(root=_ROOT.value, workers=workers, check="off")
    config.model.width = _WIDTH.value
    rates[str(workers)] = timing.input_images_per_second(config, _PIPELINE_BATCHES.value)
    print(f"pipeline, {workers} workers: {rates[str(workers)]:.0f} images/s", flush=True)
  return rates


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  os.makedirs(_WORKDIR.value, exist_ok=True)
  logs = os.path.join(_WORKDIR.value, "logs")
  os.makedirs(logs, exist_ok=True)
  results_path = os.path.join(_WORKDIR.value, "rehearsal.json")
  results = json.load(open(results_path)) if os.path.exists(results_path) else {}

  def record(name, value):
    results[name] = value
    print(f"{name}: {json.dumps(value)}", flush=True)
    with open(results_path, "w") as f:
      json.dump(results, f, indent=1)

  tree = os.path.join(_ROOT.value, synthetic_sketchy.SPLIT.dataset_dir)
  run = os.path.join(_WORKDIR.value, f"train_{_RECIPE.value}")
  for phase in _PHASES.value:
    if phase == "generate":
      if not os.path.isdir(tree):
        record("generate", run_command(["experiments.make_synthetic_sketchy",
                                        f"--root={_ROOT.value}"], f"{logs}/generate.log"))
      record("tree_disk_mib", disk_mib(tree))
    elif phase == "check":
      for mode in ("full", "quick"):
        record(f"check_{mode}", run_command(
            ["experiments.check_dataset", f"--root={_ROOT.value}", f"--split={_SPLIT}",
             f"--mode={mode}"], f"{logs}/check_{mode}.log"))
    elif phase == "pipeline":
      record("pipeline_images_per_second", pipeline_rates())
    elif phase == "train":
      steps = _TRAIN_STEPS.value
      record("train", run_command(train_argv(run, steps), f"{logs}/train.log",
                                  first_line=r"^step 1/"))
      record("train_restart", run_command(train_argv(run, steps + 1),
                                          f"{logs}/train_restart.log",
                                          first_line=rf"^step {steps + 1}/"))
      record("run_disk_mib", disk_mib(run))
    elif phase == "evaluate":
      evaluation = os.path.join(run, "eval")
      record("evaluate", run_command(
          ["experiments.evaluate", f"--workdir={run}", f"--root={_ROOT.value}",
           f"--split={_SPLIT}", "--which=latest", f"--workers={_WORKERS.value}",
           f"--output_dir={evaluation}"], f"{logs}/evaluate.log"))
      record("evaluate_from_embeddings", run_command(
          ["experiments.evaluate", f"--embeddings={evaluation}/embeddings",
           f"--output_dir={run}/eval_again"], f"{logs}/evaluate_again.log"))
      extraction = results["evaluate"]["seconds"] - results["evaluate_from_embeddings"]["seconds"]
      counts = synthetic_sketchy.SPLIT.published
      test_images = counts.query + counts.gallery  # 15,229 + 17,101
      record("extraction_images_per_second", test_images / extraction)
      record("embeddings_disk_mib", disk_mib(os.path.join(evaluation, "embeddings")))
    else:
      raise app.UsageError(f"unknown phase {phase!r}")
  print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}, {os.cpu_count()} cores; "
        f"ResNet-50 x{_WIDTH.value}, recipe {_RECIPE.value}; {results_path}")


if __name__ == "__main__":
  app.run(main)
