r"""Where the convolution time of the CPU step goes: each layer's three passes, JAX against PyTorch.

  python -m experiments.benchmarks.conv_layers                          # ResNet-50, 16 x 224 px
  python -m experiments.benchmarks.conv_layers --backbone=resnet50 --shape=32x112

Finds the backbone's convolutions by running its initialisation (every `nn.Conv` call, with its
input shape, kernel, stride, padding and groups; layers of the same shape are counted once) and
times each one's forward, input gradient and weight gradient on random data: JAX through
`zsbir_jax.models.conv` (what the model runs: 1x1 convolutions as matrix products on CPU, XLA's
convolution otherwise) and PyTorch's `aten.convolution` / `aten.convolution_backward` on NCHW
tensors, as the reference step holds them. Milliseconds, median of --steps. The last row
weights each layer by how often the `full` step runs it: two forwards (student and EMA
teacher), one input gradient (none for the stem, whose input is the image) and one weight
gradient per layer. The rest of the step (batch norm, activations, losses, the optimiser) is
not here; `step_profile` accounts for the whole step.
"""
import collections
from typing import NamedTuple

from absl import app
from absl import flags
import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
import torch

from experiments.benchmarks import full_step
from experiments.benchmarks import timing
from zsbir_jax.models import conv as conv_lib
from zsbir_jax.models import retrieval

_BACKBONE = flags.DEFINE_string("backbone", "resnet50", "resnet<depth> or lite<variant>.")
_SHAPE = flags.DEFINE_string("shape", "16x224", "Batch x image size.")
_STEPS = flags.DEFINE_integer("steps", 5, "Timed repeats per pass and layer.")
_WARMUP = flags.DEFINE_integer("warmup", 1, "Untimed repeats first (after compilation).")
_THREADS = flags.DEFINE_integer("torch_threads", 0, "torch.set_num_threads; 0 keeps torch's.")

_NHWC = ("NHWC", "HWIO", "NHWC")


class Layer(NamedTuple):
  """One convolution: input (H, W, Ci), kernel, stride, explicit padding, groups, Co."""
  size: tuple[int, int]
  in_channels: int
  out_channels: int
  kernel: tuple[int, int]
  strides: tuple[int, int]
  padding: tuple[tuple[int, int], tuple[int, int]]
  groups: int

  def describe(self) -> str:
    groups = f" /{self.groups}" if self.groups > 1 else ""
    return (f"{self.kernel[0]}x{self.kernel[1]}/{self.strides[0]} {self.size[0]}x{self.size[1]}"
            f"x{self.in_channels}->{self.out_channels}{groups}")


def backbone_layers(arch: full_step.Arch, image_size: int) -> collections.Counter:
  """Counter of the backbone's `Layer`s, in the order the network first runs them."""
  model = retrieval.RetrievalModel(
      family=arch.family, depth=arch.depth, variant=arch.variant,
      embed_dim=full_step.EMBED_DIM, num_seen_classes=10,
      num_teacher_classes=full_step.TEACHER_CLASSES)
  layers = collections.Counter()

  def record(next_fun, args, kwargs, context):
    module = context.module
    if isinstance(module, nn.Conv) and context.method_name == "__call__":
      x = args[0]
      kernel = tuple(module.kernel_size)
      strides = module.strides if module.strides is not None else 1
      strides = (strides,) * 2 if isinstance(strides, int) else tuple(strides)
      padding = module.padding
      if isinstance(padding, str):
        padding = lax.padtype_to_pads(x.shape[1:3], kernel, strides, padding)
      layers[Layer(tuple(x.shape[1:3]), x.shape[-1], module.features, kernel, strides,
                   tuple(tuple(int(p) for p in pair) for pair in padding),
                   module.feature_group_count)] += 1
    return next_fun(*args, **kwargs)

  images = jnp.zeros((1, image_size, image_size, 3))
  with nn.intercept_methods(record):
    jax.eval_shape(lambda: model.init(jax.random.key(0), images, train=False))
  return layers


def jax_passes(layer: Layer, batch_size: int):
  """(forward, input gradient, weight gradient) thunks of `layer` in JAX, compiled and ready."""
  rng = np.random.RandomState(0)
  x = jnp.asarray(rng.randn(batch_size, *layer.size, layer.in_channels), jnp.float32)
  w = jnp.asarray(0.05 * rng.randn(*layer.kernel, layer.in_channels // layer.groups,
                                    layer.out_channels), jnp.float32)

  def conv(x, w):
    return conv_lib.conv_general_dilated(x, w, layer.strides, layer.padding,
                                         dimension_numbers=_NHWC,
                                         feature_group_count=layer.groups)

  y = jax.jit(conv)(x, w)
  dy = jnp.asarray(rng.randn(*y.shape), jnp.float32)
  forward = jax.jit(conv)
  input_grad = jax.jit(lambda x, w, dy: jax.vjp(lambda x: conv(x, w), x)[1](dy)[0])
  weight_grad = jax.jit(lambda x, w, dy: jax.vjp(lambda w: conv(x, w), w)[1](dy)[0])
  return (lambda: jax.block_until_ready(forward(x, w)),
          lambda: jax.block_until_ready(input_grad(x, w, dy)),
          lambda: jax.block_until_ready(weight_grad(x, w, dy)))


def torch_passes(layer: Layer, batch_size: int):
  """The same three passes in PyTorch (NCHW). TF-style asymmetric padding is taken symmetric,
  which gives the same output size and the same work."""
  rng = np.random.RandomState(0)
  x = torch.tensor(rng.randn(batch_size, layer.in_channels, *layer.size), dtype=torch.float32)
  w = torch.tensor(0.05 * rng.randn(layer.out_channels, layer.in_channels // layer.groups,
                                    *layer.kernel), dtype=torch.float32)
  padding = [max(pair) for pair in layer.padding]
  args = (list(layer.strides), padding, [1, 1], False, [0, 0], layer.groups)
  with torch.no_grad():
    y = torch.ops.aten.convolution(x, w, None, *args)
  dy = torch.tensor(rng.randn(*y.shape), dtype=torch.float32)

  def backward(mask):
    def run():
      with torch.no_grad():
        torch.ops.aten.convolution_backward(dy, x, w, None, *args, mask)
    return run

  def forward():
    with torch.no_grad():
      torch.ops.aten.convolution(x, w, None, *args)

  return forward, backward([True, False, False]), backward([False, True, False])


def main(argv):
  del argv
  if _THREADS.value:
    torch.set_num_threads(_THREADS.value)
  arch = full_step.Arch.parse(_BACKBONE.value)
  batch_size, image_size = (int(v) for v in _SHAPE.value.split("x"))
  layers = backbone_layers(arch, image_size)
  print(f"{arch.name} at batch {batch_size} x {image_size} px: {sum(layers.values())} "
        f"convolutions of {len(layers)} shapes; jax {jax.__version__} on "
        f"{jax.devices()[0].device_kind}, torch {torch.__version__} with "
        f"{torch.get_num_threads()} threads; ms (4 significant digits: a small layer takes well "
        f"under 0.1 ms), median of {_STEPS.value}")
  print("\n| layer (k/stride HxWxCi->Co) | count | JAX fwd | JAX dX | JAX dW | PyTorch fwd | "
        "PyTorch dX | PyTorch dW | JAX / PyTorch, 3 passes |\n" + "|---" * 9 + "|")
  per_step = np.zeros(2)
  for index, (layer, count) in enumerate(layers.items()):
    times = np.array([[1e3 * timing.median_seconds(run, _STEPS.value, _WARMUP.value)
                       for run in passes(layer, batch_size)]
                      for passes in (jax_passes, torch_passes)])
    uses = np.array([2.0, 0.0 if index == 0 else 1.0, 1.0])  # the stem's input is the image
    per_step += count * times @ uses
    print(f"| {layer.describe()} | {count} | " + " | ".join(f"{t:.4g}" for t in times.ravel())
          + f" | {times[1].sum() / times[0].sum():.2f} |", flush=True)
  print(f"| per `full` step (2 fwd + dX + dW, x count) | | {per_step[0]:.4g} | | | "
        f"{per_step[1]:.4g} | | | {per_step[1] / per_step[0]:.2f} |")


if __name__ == "__main__":
  app.run(main)
