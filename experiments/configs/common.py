"""Defaults shared by every experiment config, and the recipes of METHOD.md.

Every experiment file (one per benchmark split) builds on `base_config` and `apply_recipe`, and
takes its arguments big_vision-style: `--config=experiments/configs/synthetic.py:recipe=full`.
Loss weights, margins and temperatures are reconstructions where METHOD.md says so: set the
published values from the papers here if you hold them.
"""
import ml_collections

RECIPES = ("none", "ce", "sake", "eff", "bkd", "full")


def base_config() -> ml_collections.ConfigDict:
  """Model, loss and optimizer defaults (SAKE's training defaults; ResNet-50, D = 512)."""
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.recipe = "full"

  config.model = ml_collections.ConfigDict(dict(
      depth=50, width=1.0, embed_dim=512, dtype="float32", remat=False))

  config.loss = ml_collections.ConfigDict(dict(
      cls=dict(weight=1.0, label_smoothing=0.0),
      quad=dict(weight=1.0, margin=0.2, mining="hard"),
      skp=dict(weight=1.0, temperature=1.0, targets="classwise"),
      kd=dict(weight=1.0, tau=4.0),
      da=dict(weight=1.0),
      ema_momentum=0.999,
      modality_weighting=True,
      modality_eps=1e-8,
  ))

  config.optim = ml_collections.ConfigDict(dict(
      name="adam", lr=1e-4, weight_decay=5e-4, b1=0.9, b2=0.999, eps=1e-8, momentum=0.9,
      nesterov=False, schedule="sake", epochs=20, warmup_epochs=0.0, backbone_lr_mult=1.0,
      grad_accum_steps=1))

  # fsdp_min_size: None replicates the state; an int splits every state leaf of at least that
  # many elements over the data axis (FSDP).
  config.sharding = ml_collections.ConfigDict(dict(
      fsdp_min_size=ml_collections.FieldReference(None, field_type=int)))
  return config


def apply_recipe(config: ml_collections.ConfigDict, recipe: str) -> ml_collections.ConfigDict:
  """Switches the loss terms of `config` to a recipe of METHOD.md (in place; returns config).

  eff: cls + quad + class-wise skp.      bkd: cls + quad + EMA-teacher kd + da, modality-weighted.
  full: every term, modality-weighted.   sake: cls + online (per-photo) skp.
  ce: cls only.                          none: no fine-tuning (the pretrained backbone).
  """
  if recipe not in RECIPES:
    raise ValueError(f"unknown recipe {recipe!r}; choose one of {RECIPES}")
  terms = {
      "none": (), "ce": ("cls",), "sake": ("cls", "skp"), "eff": ("cls", "quad", "skp"),
      "bkd": ("cls", "quad", "kd", "da"), "full": ("cls", "quad", "skp", "kd", "da"),
  }[recipe]
  for term in ("cls", "quad", "skp", "kd", "da"):
    if term not in terms:
      config.loss[term].weight = 0.0
  config.loss.skp.targets = "online" if recipe == "sake" else "classwise"
  config.loss.modality_weighting = recipe in ("bkd", "full")
  config.recipe = recipe
  return config
