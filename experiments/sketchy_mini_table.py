r"""The Sketchy-mini results: the recipes on real sketches, and JAX beside the PyTorch reference.

  python -m experiments.sketchy_mini_table --sketchy=/data/sketchy_subset
      # -> runs/sketchy_mini_table/ (workspaces, checkpoints),
      #    experiments/results/sketchy_mini_runs/ (run records), experiments/results/sketchy_mini.md

1. Sketchy-25-mini: every recipe of --recipes (default none, ce, sake, eff, bkd, full), once per
   seed of --seeds (default 0, 1, 2), through the job of `experiments.run_sketchy_mini` (its
   lists, the installed ImageNet Lite0, its knowledge; `sketchy_mini_job`).
2. The same split, the PyTorch reference of --torch_recipes (default eff, full) per seed:
   `experiments.benchmarks.torch_job` on the same workspace, from the same initial state, on
   the same batches, with the same schedule, selection and scoring.
3. Sketchy-21-mini: `none` and the selected recipe: the trained recipe with the highest mean
   held-out seen-sketch accuracy on Sketchy-25-mini (never an unseen-class result).
4. Sketchy-25-mini: the single-term ablations of `full` of --ablations (default full-quad,
   full-skp, full-kd, full-da, full-mw), once per seed of --ablation_seeds (default 0 alone:
   five more runs rather than fifteen). Not full-cls: without cls the seen-class classifier,
   whose held-out accuracy selects the checkpoint, is not trained.

Every finished run leaves a record, <records>/<split>/<framework>/<recipe>/seed<s>.json (its
metrics and config; committed beside the results file), and a run with a record is not redone:
the table resumes where it stopped, on this machine or another (an unfinished JAX run also
resumes from its last checkpoint in <workdir>/<split>/<framework>/<recipe>/seed<s>/). The table
is rewritten after every run from the records so far; a hand-written `## Discussion` section
below it is kept. `--notrain` writes it from the records alone, with no --sketchy (a test
checks that the committed tables are the committed records' own). The config is --config
(default experiments/configs/sketchy_mini.py, `full`; override any value with
--config.x.y=value).
"""
import functools
import os
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from experiments import main_job
from experiments import sketchy_mini_job as job
from experiments.configs import common

_CONFIG = config_flags.DEFINE_config_file(
    "config", "experiments/configs/sketchy_mini.py", "Config of every run (the full recipe).")
_SKETCHY = flags.DEFINE_string("sketchy", None, "Sketchy tree (full download or flat subset).")
_TRAIN = flags.DEFINE_bool("train", True, "Train the runs without a record; --notrain writes the "
                           "table from the records alone (runs without one are left out).")
_WORKDIR = flags.DEFINE_string("workdir", "runs/sketchy_mini_table",
                               "Workspaces and runs, one directory per split.")
_RECIPES = flags.DEFINE_list("recipes", list(common.RECIPES),
                             "Recipes trained on Sketchy-25-mini.")
_TORCH_RECIPES = flags.DEFINE_list("torch_recipes", ["eff", "full"],
                                   "Recipes also trained with the PyTorch reference.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds of every run but the ablations.")
_ABLATIONS = flags.DEFINE_list("ablations", [a for a in common.ABLATIONS if a != "full-cls"],
                               "Ablations of full trained on Sketchy-25-mini, last.")
_ABLATION_SEEDS = flags.DEFINE_list("ablation_seeds", ["0"], "Seeds of the ablations.")
_RECORDS = flags.DEFINE_string("records", "experiments/results/sketchy_mini_runs",
                               "Run records: a run with one is not redone.")
_OUTPUT = flags.DEFINE_string("output", "experiments/results/sketchy_mini.md", "The Markdown.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if _TRAIN.value and not _SKETCHY.value:
    raise app.UsageError("give --sketchy (the Sketchy tree), or --notrain to write the table "
                         "from the records alone")
  base = _CONFIG.value
  job.check_job(base, _RECIPES.value + _TORCH_RECIPES.value + _ABLATIONS.value)
  logging.set_verbosity(logging.WARNING)
  seeds = [int(s) for s in _SEEDS.value]
  command = " ".join(["python -m experiments.sketchy_mini_table"] + sys.argv[1:])
  seen25, unseen21 = job.SPLITS
  split_bases = {split: base.copy_and_resolve_references() for split in job.SPLITS}
  for split, split_base in split_bases.items():
    split_base.data.split = split

  @functools.cache
  def workspace(split):  # made when a run of the split trains first, not for a record
    return job.prepare(_SKETCHY.value, os.path.join(_WORKDIR.value, split), split_bases[split])

  results = {split: {} for split in job.SPLITS}

  def run(split, framework, recipe, seed, compute):
    record = os.path.join(_RECORDS.value, split, framework, recipe, f"seed{seed}.json")
    config = job.run_config(split_bases[split], recipe, seed)
    if _TRAIN.value:
      run_dir = os.path.join(_WORKDIR.value, split, framework, recipe, f"seed{seed}")
      print(f"== {split}: {framework} {recipe}, seed {seed} -> {run_dir}", flush=True)
      result = job.cached(record, config, lambda: compute(
          workspace(split), split_bases[split], run_dir, recipe, seed))
    else:
      result = job.read_record(record, config)
      if result is None:
        return
    results[split].setdefault((framework, recipe), []).append(result)
    print(f"   {split}: {framework} {recipe}, seed {seed}: mAP@all "
          f"{100 * result['metrics']['map@all']:.2f}, held-out seen-sketch accuracy "
          f"{100 * result['seen_accuracy']:.1f}%", flush=True)
    main_job.write_results(_OUTPUT.value, job.table(
        {s: r for s, r in results.items() if r}, base, command))

  # The first JAX run of a split checks its lists (check_dataset's full check).
  checked = functools.partial(job.run_jax, data_check="full")
  for seed in seeds:  # seed-major, so that a partial table already has every row
    for recipe in _RECIPES.value:
      first = seed == seeds[0] and recipe == _RECIPES.value[0]
      run(seen25, "jax", recipe, seed, checked if first else job.run_jax)
    for recipe in _TORCH_RECIPES.value:
      run(seen25, "pytorch", recipe, seed, job.run_torch)
  chosen = job.selected_recipe(results[seen25])
  print(f"selected for {unseen21} by held-out seen-sketch accuracy: {chosen}")
  for seed in seeds:
    for recipe in ("none", chosen) if chosen else ("none",):
      first = seed == seeds[0] and recipe == "none"
      run(unseen21, "jax", recipe, seed, checked if first else job.run_jax)
  for seed in [int(s) for s in _ABLATION_SEEDS.value]:
    for recipe in _ABLATIONS.value:
      run(seen25, "jax", recipe, seed, job.run_jax)
  print(f"table: {_OUTPUT.value}")


if __name__ == "__main__":
  app.run(main)
