"""Defaults shared by every experiment config, and the recipes of METHOD.md.

Every experiment file (one per benchmark split) builds on `base_config` and `apply_recipe`, and
takes its arguments big_vision-style: `--config=experiments/configs/synthetic.py:recipe=full`.
Loss weights, margins and temperatures are reconstructions where METHOD.md says so: set the
published values from the papers here if you hold them.
"""
import ml_collections

RECIPES = ("none", "ce", "sake", "eff", "bkd", "full")
LOSS_TERMS = ("cls", "quad", "skp", "kd", "da")
# The single-term ablations of full: full-<x> is full with one of its terms switched off, or
# without the modality weighting (mw).
ABLATIONS = tuple(f"full-{part}" for part in LOSS_TERMS + ("mw",))


def base_config() -> ml_collections.ConfigDict:
  """Model, loss and optimizer defaults (SAKE's training defaults; ResNet-50, D = 512)."""
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.recipe = "full"

  # backbone: the family, 'resnet' (of `depth`) or 'efficientnet_lite' (Lite`variant`, 0..4);
  # `width` multiplies either's channels. A --config.init.backbone directory must match them.
  config.model = ml_collections.ConfigDict(dict(
      backbone="resnet", depth=50, variant=0, width=1.0, embed_dim=512, dtype="float32",
      remat=False))

  # kind: 'retrieval' (the terms below, zsbir_jax/method/objective.py); backbone pretraining
  # uses 'classification' (experiments/configs/pretrain_backbone.py).
  config.loss = ml_collections.ConfigDict(dict(
      kind="retrieval",
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
  """Switches the loss terms of `config` to a recipe of METHOD.md or an ablation of full (in
  place; returns config).

  eff: cls + quad + class-wise skp.      bkd: cls + quad + EMA-teacher kd + da, modality-weighted.
  full: every term, modality-weighted.   sake: cls + online (per-photo) skp.
  ce: cls only.                          none: no fine-tuning (the pretrained backbone).
  full-<x> (ABLATIONS): full without the term x, or without the modality weighting (x = mw).
  """
  if recipe not in RECIPES + ABLATIONS:
    raise ValueError(f"unknown recipe {recipe!r}; choose one of {RECIPES + ABLATIONS}")
  name, _, without = recipe.partition("-")
  terms = {
      "none": (), "ce": ("cls",), "sake": ("cls", "skp"), "eff": ("cls", "quad", "skp"),
      "bkd": ("cls", "quad", "kd", "da"), "full": ("cls", "quad", "skp", "kd", "da"),
  }[name]
  for term in LOSS_TERMS:
    if term not in terms or term == without:
      config.loss[term].weight = 0.0
  config.loss.skp.targets = "online" if name == "sake" else "classwise"
  config.loss.modality_weighting = name in ("bkd", "full") and without != "mw"
  config.recipe = recipe
  return config


def parse_arg(arg: str | None, **defaults):
  """big_vision-style config argument: 'recipe=eff,runlocal' -> ConfigDict(recipe='eff', ...).

  Keys must be among `defaults`; a bare key sets a boolean to True; values take the type of
  their default.
  """
  parsed = ml_collections.ConfigDict(defaults)
  for item in filter(None, (arg or "").split(",")):
    key, _, value = item.partition("=")
    if key not in defaults:
      raise ValueError(f"unknown config argument {key!r}; known: {sorted(defaults)}")
    default = defaults[key]
    if isinstance(default, bool):
      parsed[key] = value.lower() in ("", "1", "true", "yes")
    else:
      parsed[key] = type(default)(value)
  return parsed


def training_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Adds the data, initialisation and loop blocks every launcher config has (in place)."""
  config.data = ml_collections.ConfigDict(dict(
      source="files", root="", split="", tfds_data_dir="", image_size=224, classes_per_batch=10,
      items_per_class=2, workers=2, threads=4, prefetch=4, check="full", check_workers=2,
      eval_batch_size=128, crop_sketch_to_ink=False))
  # source: where every list of the split is read (zsbir_jax/data/source.py, open_split):
  # "files", the list files and images under `root`; "tfds", the split's ArrayRecord build
  # (zsbir_jax/data/tfds_builders.py) in the TFDS data directory `tfds_data_dir` (`root` unused).
  # Both give the same batches for the same seed: the build stores the original image bytes.
  # check: "full" decodes every image, "quick" reads headers and sizes (of a TFDS build: its
  # metadata, no image), "off" skips the check; a passed check is remembered in the workdir
  # until the lists or images (or the build's files) change.
  # backbone: a pretrained-backbone directory (experiments.convert_weights or
  # experiments.pretrain_backbone); empty trains from scratch. knowledge: the class-wise table
  # of experiments.prepare_knowledge, needed by recipes with class-wise skp (eff, full).
  config.init = ml_collections.ConfigDict(dict(backbone="", knowledge="",
                                               num_teacher_classes=1000))
  # stop_after_steps: 0 runs to the end of the schedule; N stops after step N with a
  # checkpoint, the schedule unchanged (a rehearsal, a time slot): running the same command
  # with a later stop, or none, continues exactly.
  config.train = ml_collections.ConfigDict(dict(
      log_every=50, checkpoint_every=500, keep_checkpoints=3, stop_after_steps=0,
      distributed=False))
  # Evaluations during training (zsbir_jax/training/evaluators.py): a kind and a schedule in
  # epochs (0: off). Seen-class accuracy on held-out seen sketches selects the best checkpoint;
  # unseen-class retrieval is logged for monitoring only and never chooses anything.
  config.evals = ml_collections.ConfigDict(dict(
      seen=dict(kind="seen_accuracy", every_epochs=1),
      unseen=dict(kind="unseen_retrieval", every_epochs=0)))
  return config


def runlocal(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Shrinks any config for a quick CPU run (in place): a tiny backbone of its family (ResNet-18
  or its EfficientNet-Lite at width 0.125), 32 px, short run."""
  config.model.update(depth=18, width=0.125, embed_dim=32)
  config.data.update(image_size=32, classes_per_batch=4, items_per_class=2, workers=0,
                     eval_batch_size=32)
  config.optim.epochs = 1
  config.train.update(log_every=5, checkpoint_every=20)
  return config
