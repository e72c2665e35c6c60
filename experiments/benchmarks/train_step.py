r"""Training-step speed of the `full` recipe: the jitted JAX step against the PyTorch reference.

  python -m experiments.benchmarks.train_step   # ResNet-50 at 32 x 112 px and 16 x 224 px,
                                                # EfficientNet-Lite0 at the Sketchy-mini shape
  python -m experiments.benchmarks.train_step --notorch --dtype=bfloat16 \
      --shapes=resnet50:128x224                 # the JAX step alone, on a GPU or TPU

Both sides run the same step (`full_step.py`: the backbone, all five losses of `full`, Adam, the
EMA teacher; float32; the same weights and P x K batch) on the same machine in the same process.
Each side is warmed up (compilation, allocator) and then timed over several steps; the table
gives the median. Where the JAX step's time goes: `experiments.benchmarks.step_profile`. The
PyTorch reference runs on the CPU in float32, so on an accelerator time the JAX step alone.
"""
from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import torch

from experiments.benchmarks import full_step
from experiments.benchmarks import timing
from experiments.configs import sketchy_mini

_MINI = sketchy_mini.get_config().data  # the Sketchy-mini config's batch (2 P K) and image size
_SHAPES = flags.DEFINE_list(
    "shapes", ["resnet50:32x112", "resnet50:16x224",
               f"lite0:{2 * _MINI.classes_per_batch * _MINI.items_per_class}x{_MINI.image_size}"],
    "backbone:batch x image size, the backbone resnet<depth> or lite<variant>.")
_STEPS = flags.DEFINE_integer("steps", 5, "Timed steps per side and shape.")
_WARMUP = flags.DEFINE_integer("warmup", 2, "Untimed steps first (after compilation).")
_CLASSES = flags.DEFINE_integer("num_seen_classes", 100, "Seen classes (Sketchy-25: 100).")
_BASELINE = flags.DEFINE_bool("xla_conv_baseline", True,
                              "Also time the JAX step with XLA's own convolutions throughout.")
_THREADS = flags.DEFINE_integer("torch_threads", 0, "torch.set_num_threads; 0 keeps torch's.")
_TORCH = flags.DEFINE_bool("torch", True, "Also time the PyTorch reference (CPU, float32).")
_DTYPE = flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"],
                           "Compute dtype of the JAX step (the reference is float32).")


def main(argv):
  del argv
  if _THREADS.value:
    torch.set_num_threads(_THREADS.value)
  if _DTYPE.value != "float32" and _TORCH.value:
    raise app.UsageError("The PyTorch reference is float32: use --notorch with --dtype.")
  print(f"Recipe full, {_DTYPE.value}; jax {jax.__version__} on "
        f"{jax.devices()[0].device_kind} ({jax.device_count()} device(s)), torch "
        f"{torch.__version__} with {torch.get_num_threads()} threads; median of {_STEPS.value} "
        f"steps after {_WARMUP.value} warm-up steps")
  rows = []
  for entry in _SHAPES.value:
    if entry.count(":") != 1:
      raise app.UsageError(f"--shapes entry {entry!r}: expected backbone:BxS, e.g. "
                           "resnet50:32x112 or lite0:32x96")
    name, shape = entry.split(":")
    arch = full_step.Arch.parse(name)
    batch_size, image_size = (int(v) for v in shape.split("x"))
    batch = full_step.pk_batch(batch_size, image_size, _CLASSES.value)
    dtype = jnp.dtype(_DTYPE.value)
    step = full_step.jax_step(arch, batch, _CLASSES.value, dtype)
    jax_s = timing.median_seconds(step.run, _STEPS.value, _WARMUP.value)
    baseline_s = torch_s = float("nan")
    if _BASELINE.value:
      with full_step.xla_convolutions():
        baseline = full_step.jax_step(arch, batch, _CLASSES.value, dtype)
      baseline_s = timing.median_seconds(baseline.run, _STEPS.value, _WARMUP.value)
    if _TORCH.value:
      torch_s = timing.median_seconds(
          full_step.torch_step(arch, batch, _CLASSES.value, step.initial),
          _STEPS.value, _WARMUP.value)
    rows.append((arch.name, batch_size, image_size, jax_s, baseline_s, torch_s))
    print(f"  {arch.name} {shape}: jax {jax_s:.3f} s/step (XLA convolutions {baseline_s:.3f}), "
          f"torch {torch_s:.3f} s/step", flush=True)
  print("\n| backbone | batch | image | JAX img/s | JAX, XLA convs, img/s | PyTorch img/s "
        "| JAX / PyTorch | JAX, XLA convs / PyTorch |\n|---|---|---|---|---|---|---|---|")
  for name, batch_size, image_size, jax_s, baseline_s, torch_s in rows:
    print(f"| {name} | {batch_size} | {image_size} px | {batch_size / jax_s:.1f} | "
          f"{batch_size / baseline_s:.1f} | {batch_size / torch_s:.1f} | {torch_s / jax_s:.2f} | "
          f"{torch_s / baseline_s:.2f} |")


if __name__ == "__main__":
  app.run(main)
