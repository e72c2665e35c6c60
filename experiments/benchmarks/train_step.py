r"""Training-step speed of the `full` recipe: the jitted JAX step against the PyTorch reference.

  python -m experiments.benchmarks.train_step            # ResNet-50, 32 x 112 px and 16 x 224 px

Both sides run the same step on the same machine in the same process: ResNet-50 -> embedding
(D 512) -> seen classifier (100 classes) and teacher head (1000), all five losses of `full`
with BKD's modality weights, Adam with L2 decay and the EMA teacher (`train_step.py` and
`experiments/benchmarks/torch_reference.py`), float32, P x K batches. Each side is warmed up
(compilation, allocator) and then timed over several steps; the table gives the median.
"""
import time

from absl import app
from absl import flags
import jax
import numpy as np
import torch

from experiments.benchmarks import torch_reference
from experiments.configs import common
from zsbir_jax import optim
from zsbir_jax import sharding
from zsbir_jax import train_state
from zsbir_jax import train_step as train_step_lib
from zsbir_jax.data import sampler
from zsbir_jax.models import retrieval

_DEPTH = flags.DEFINE_integer("depth", 50, "ResNet depth.")
_SHAPES = flags.DEFINE_list("shapes", ["32x112", "16x224"], "Batch x image size pairs.")
_STEPS = flags.DEFINE_integer("steps", 5, "Timed steps per side and shape.")
_WARMUP = flags.DEFINE_integer("warmup", 2, "Untimed steps first (after compilation).")
_CLASSES = flags.DEFINE_integer("num_seen_classes", 100, "Seen classes (Sketchy-25: 100).")
_THREADS = flags.DEFINE_integer("torch_threads", 0, "torch.set_num_threads; 0 keeps torch's.")

EMBED_DIM, TEACHER_CLASSES = 512, 1000


def pk_batch(batch_size: int, image_size: int, num_classes: int) -> dict[str, np.ndarray]:
  """A P x K batch (K = 2 sketches and 2 photos per class) of random NHWC images."""
  if batch_size % 4:
    raise ValueError(f"batch size {batch_size} must be a multiple of 4 (P classes x 2 x 2)")
  layout = sampler.pk_layout(np.arange(batch_size // 4) % num_classes, 2)
  rng = np.random.RandomState(0)
  return dict(layout,
              image=rng.randn(batch_size, image_size, image_size, 3).astype(np.float32))


def timed(step, n: int, warmup: int) -> float:
  """Median seconds of `step()` over n calls after `warmup` untimed ones; step blocks."""
  for _ in range(warmup):
    step()
  times = []
  for _ in range(n):
    start = time.perf_counter()
    step()
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def jax_step_seconds(config, batch, num_steps: int, warmup: int) -> tuple[float, object]:
  """Median seconds of the jitted `full` step on one device; also returns the initial state."""
  model = retrieval.RetrievalModel(depth=_DEPTH.value, embed_dim=EMBED_DIM,
                                   num_seen_classes=_CLASSES.value,
                                   num_teacher_classes=TEACHER_CLASSES)
  optimizer = optim.make_optimizer(config.optim, steps_per_epoch=100)
  targets = jax.nn.softmax(jax.random.normal(jax.random.key(3), (_CLASSES.value, TEACHER_CLASSES)))
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

  def run():
    nonlocal state
    state, metrics = step(state, device_batch)
    jax.block_until_ready((state, metrics))

  return timed(run, num_steps, warmup + 1), initial


def torch_step_seconds(config, batch, initial, num_steps: int, warmup: int) -> float:
  """Median seconds of the PyTorch reference step from the same initial weights."""
  student = torch_reference.RetrievalModel(_DEPTH.value, EMBED_DIM, _CLASSES.value,
                                           TEACHER_CLASSES)
  student.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in
                           torch_reference.state_dict_from_flax(initial.params,
                                                                initial.batch_stats).items()})
  trainer = torch_reference.Trainer(
      student, torch.from_numpy(np.array(initial.frozen["class_targets"])), config)
  torch_batch = {"image": torch.from_numpy(batch["image"].transpose(0, 3, 1, 2).copy()),
                 **{k: torch.from_numpy(batch[k]).long() for k in ("label", "domain", "partner")}}
  return timed(lambda: trainer.step(torch_batch, return_gradients=False), num_steps, warmup)


def main(argv):
  del argv
  if _THREADS.value:
    torch.set_num_threads(_THREADS.value)
  config = common.apply_recipe(common.base_config(), "full")
  config.optim.schedule = "constant"  # the reference's torch.optim.Adam runs at a constant rate
  print(f"ResNet-{_DEPTH.value}, recipe full, float32; jax {jax.__version__} on "
        f"{jax.devices()[0].device_kind} ({jax.device_count()} device(s)), torch "
        f"{torch.__version__} with {torch.get_num_threads()} threads; median of {_STEPS.value} "
        f"steps after {_WARMUP.value} warm-up steps")
  rows = []
  for shape in _SHAPES.value:
    batch_size, image_size = (int(v) for v in shape.split("x"))
    batch = pk_batch(batch_size, image_size, _CLASSES.value)
    jax_s, initial = jax_step_seconds(config, batch, _STEPS.value, _WARMUP.value)
    torch_s = torch_step_seconds(config, batch, initial, _STEPS.value, _WARMUP.value)
    rows.append((batch_size, image_size, jax_s, torch_s))
    print(f"  {shape}: jax {jax_s:.3f} s/step, torch {torch_s:.3f} s/step", flush=True)
  print("\n| batch | image | JAX img/s | PyTorch img/s | JAX / PyTorch |\n|---|---|---|---|---|")
  for batch_size, image_size, jax_s, torch_s in rows:
    print(f"| {batch_size} | {image_size} px | {batch_size / jax_s:.1f} | "
          f"{batch_size / torch_s:.1f} | {torch_s / jax_s:.2f} |")


if __name__ == "__main__":
  app.run(main)
