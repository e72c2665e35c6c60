"""The recipes of METHOD.md and the ablations of full, as loss switches."""
import pytest

from experiments.configs import common

TERMS = ("cls", "quad", "skp", "kd", "da")


def switches(recipe):
  config = common.apply_recipe(common.base_config(), recipe)
  on = {t for t in TERMS if config.loss[t].weight}
  return on, config.loss.modality_weighting, config.loss.skp.targets, config.recipe


# The loss terms each recipe switches on (METHOD.md), and whether it weights the modalities.
CASES = [
    ("none", set(), False), ("ce", {"cls"}, False), ("sake", {"cls", "skp"}, False),
    ("eff", {"cls", "quad", "skp"}, False), ("bkd", {"cls", "quad", "kd", "da"}, True),
    ("full", set(TERMS), True), ("full-cls", {"quad", "skp", "kd", "da"}, True),
    ("full-quad", {"cls", "skp", "kd", "da"}, True),
    ("full-skp", {"cls", "quad", "kd", "da"}, True),
    ("full-kd", {"cls", "quad", "skp", "da"}, True),
    ("full-da", {"cls", "quad", "skp", "kd"}, True),
    ("full-mw", set(TERMS), False)]


@pytest.mark.parametrize("recipe, on, weighted", CASES)
def test_recipe_switches(recipe, on, weighted):
  assert switches(recipe) == (on, weighted, "online" if recipe == "sake" else "classwise", recipe)


def test_every_recipe_is_covered_and_unknown_names_fail():
  assert [case[0] for case in CASES] == list(common.RECIPES + common.ABLATIONS)
  for name in ("full-mix", "eff-quad", "fully"):
    with pytest.raises(ValueError, match="unknown recipe"):
      common.apply_recipe(common.base_config(), name)
