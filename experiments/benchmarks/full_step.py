"""The `full`-recipe training step, built for benchmarking in JAX and in PyTorch.

Both sides run the same step: a backbone (`Arch`: ResNet or EfficientNet-Lite) -> embedding
(D 512) -> seen classifier and teacher head (1000), all five losses of `full` with BKD's
modality weights, Adam with L2 decay at a constant rate and the EMA teacher
(`zsbir_jax.training.train_step` and `torch_reference.Trainer`), float32, from the same initial
weights and the same P x K batch. Defines no flags, so every benchmark script can import it.
"""
import contextlib
import dataclasses
import functools
import re
from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import torch

from experiments.benchmarks import torch_reference
from experiments.configs import common
from zsbir_jax import sharding
from zsbir_jax.data import sampler
from zsbir_jax.models import backbones
from zsbir_jax.models import efficientnet_lite
from zsbir_jax.models import resnet
from zsbir_jax.models import retrieval
from zsbir_jax.training import optim
from zsbir_jax.training import train_state
from zsbir_jax.training import train_step as train_step_lib

EMBED_DIM, TEACHER_CLASSES = 512, 1000


class Arch(NamedTuple):
  """A backbone: `family` (`backbones.RESNET` of `depth`, `EFFICIENTNET_LITE` of `variant`)."""
  family: str
  depth: int = 50
  variant: int = 0

  @classmethod
  def parse(cls, name: str) -> "Arch":
    """'resnet50' -> ResNet-50, 'lite0' -> EfficientNet-Lite0."""
    if match := re.fullmatch(r"resnet(\d+)", name):
      return cls(backbones.RESNET, depth=int(match.group(1)))
    if match := re.fullmatch(r"lite(\d)", name):
      return cls(backbones.EFFICIENTNET_LITE, variant=int(match.group(1)))
    raise ValueError(f"unknown backbone {name!r}: resnet<depth> or lite<variant>")

  @property
  def name(self) -> str:
    if self.family == backbones.RESNET:
      return f"ResNet-{self.depth}"
    return f"EfficientNet-Lite{self.variant}"


@contextlib.contextmanager
def xla_convolutions():
  """Builds ResNets and EfficientNet-Lites with Flax's plain nn.Conv (XLA's own convolutions
  throughout) inside the block: the baseline that `zsbir_jax.models.conv`'s CPU 1x1 products are
  measured against."""
  ours = resnet.Conv, efficientnet_lite.Conv
  resnet.Conv = functools.partial(nn.Conv, use_bias=False, kernel_init=resnet.conv_init)
  efficientnet_lite.Conv = functools.partial(nn.Conv, use_bias=False, padding="SAME",
                                             kernel_init=efficientnet_lite.torch_default_init)
  try:
    yield
  finally:
    resnet.Conv, efficientnet_lite.Conv = ours


def full_config():
  config = common.apply_recipe(common.base_config(), "full")
  config.optim.schedule = "constant"  # the reference's torch.optim.Adam runs at a constant rate
  return config


def pk_batch(batch_size: int, image_size: int, num_classes: int) -> dict[str, np.ndarray]:
  """A P x K batch (K = 2 sketches and 2 photos per class) of random NHWC images."""
  if batch_size % 4:
    raise ValueError(f"batch size {batch_size} must be a multiple of 4 (P classes x 2 x 2)")
  layout = sampler.pk_layout(np.arange(batch_size // 4) % num_classes, 2)
  rng = np.random.RandomState(0)
  return dict(layout,
              image=rng.randn(batch_size, image_size, image_size, 3).astype(np.float32))


@dataclasses.dataclass
class JaxStep:
  """The step compiled for one device. `run()` takes one step (blocking); `initial` is the
  state before the first step, on the host; `compiled` the executable `run` calls."""
  run: Callable[[], None]
  initial: Any
  compiled: Any


def jax_step(arch: Arch, batch: dict[str, np.ndarray], num_classes: int,
             dtype: Any = jnp.float32) -> JaxStep:
  """The JAX step on one device; `dtype` is the compute dtype (bfloat16 on accelerators)."""
  config = full_config()
  model = retrieval.RetrievalModel(family=arch.family, depth=arch.depth, variant=arch.variant,
                                   embed_dim=EMBED_DIM, num_seen_classes=num_classes,
                                   num_teacher_classes=TEACHER_CLASSES, dtype=dtype)
  optimizer = optim.make_optimizer(config.optim, steps_per_epoch=100)
  targets = jax.nn.softmax(jax.random.normal(jax.random.key(3), (num_classes, TEACHER_CLASSES)))
  size = batch["image"].shape[1]
  state = jax.jit(lambda: train_state.create(model, optimizer, jax.random.key(0), size,
                                             with_teacher=True,
                                             frozen={"class_targets": targets}))()
  initial = jax.device_get(state)
  mesh = sharding.make_mesh(jax.devices()[:1])
  step = train_step_lib.jit_train_step(
      train_step_lib.make_train_step(model, optimizer, config.loss), mesh,
      sharding.state_shardings(state, mesh))
  device_batch = jax.device_put(batch)
  # Traced and compiled here, so that a context around this call (xla_convolutions) applies.
  compiled = step.lower(state, device_batch).compile()

  def run():
    nonlocal state
    state, metrics = compiled(state, device_batch)
    jax.block_until_ready((state, metrics))

  return JaxStep(run, initial, compiled)


def torch_step(arch: Arch, batch: dict[str, np.ndarray], num_classes: int,
               initial: Any) -> Callable[[], None]:
  """One blocking step of the PyTorch reference from the JAX state `initial`."""
  student = torch_reference.RetrievalModel(arch.depth, EMBED_DIM, num_classes, TEACHER_CLASSES,
                                           family=arch.family, variant=arch.variant)
  student.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in
                           torch_reference.state_dict_from_flax(
                               initial.params, initial.batch_stats, arch.family).items()})
  trainer = torch_reference.Trainer(
      student, torch.from_numpy(np.array(initial.frozen["class_targets"])), full_config())
  torch_batch = {"image": torch.from_numpy(batch["image"].transpose(0, 3, 1, 2).copy()),
                 **{k: torch.from_numpy(batch[k]).long() for k in ("label", "domain", "partner")}}
  return lambda: trainer.step(torch_batch, return_gradients=False)
