r"""Memory of the `full`-recipe training step per image, with and without rematerialisation.

  python -m experiments.benchmarks.step_memory --depth=50 --image_size=224 --batch_size=32

Two measures for ResNet-50 at 224 px:
* XLA's memory analysis of the compiled step (arguments = state + batch, outputs, temporaries =
  activations and workspace) on this backend. XLA:CPU drops the optimization barriers that keep
  rematerialised forward passes apart and CSEs them away, so on CPU the two compiled programs
  are the same; GPU and TPU keep them.
* The activations the backward pass keeps (the residuals of `jax.vjp` of the student's forward
  and loss), per image, from the traced program: backend-independent, and where remat shows.
"""
from absl import app
from absl import flags
import jax
import jax.numpy as jnp

from experiments.configs import common
from zsbir_jax import sharding
from zsbir_jax.models import retrieval
from zsbir_jax.training import optim
from zsbir_jax.training import train_state
from zsbir_jax.training import train_step as train_step_lib

_DEPTH = flags.DEFINE_integer("depth", 50, "ResNet depth.")
_WIDTH = flags.DEFINE_float("width", 1.0, "ResNet width multiplier.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 224, "Image side in pixels.")
_BATCH = flags.DEFINE_integer("batch_size", 32, "Global batch (2 x P x K).")
_CLASSES = flags.DEFINE_integer("num_seen_classes", 100, "Seen classes (Sketchy-25: 100).")
_DTYPE = flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "Compute dtype.")


def compiled_memory(remat: bool):
  config = common.apply_recipe(common.base_config(), "full")
  model = retrieval.RetrievalModel(depth=_DEPTH.value, width=_WIDTH.value,
                                   num_seen_classes=_CLASSES.value, num_teacher_classes=1000,
                                   dtype=jnp.dtype(_DTYPE.value), remat=remat)
  optimizer = optim.make_optimizer(config.optim, steps_per_epoch=100)
  size = _IMAGE_SIZE.value
  state = jax.eval_shape(lambda: train_state.create(
      model, optimizer, jax.random.PRNGKey(0), size, with_teacher=True,
      frozen={"class_targets": jnp.zeros((_CLASSES.value, 1000))}))
  b = _BATCH.value
  batch = {"image": jax.ShapeDtypeStruct((b, size, size, 3), jnp.float32),
           "label": jax.ShapeDtypeStruct((b,), jnp.int32),
           "domain": jax.ShapeDtypeStruct((b,), jnp.int32),
           "partner": jax.ShapeDtypeStruct((b,), jnp.int32)}
  mesh = sharding.make_mesh(jax.devices()[:1])
  step = train_step_lib.jit_train_step(
      train_step_lib.make_train_step(model, optimizer, config.loss), mesh,
      sharding.state_shardings(state, mesh))
  compiled = step.lower(state, batch).compile()
  params = sum(leaf.size for leaf in jax.tree.leaves(state.params))
  return compiled.memory_analysis(), compiled.cost_analysis().get("flops", float("nan")), params


def saved_activations_per_image(remat: bool) -> float:
  """Bytes per image of the residuals jax.vjp keeps for the backward pass of the forward."""
  model = retrieval.RetrievalModel(depth=_DEPTH.value, width=_WIDTH.value,
                                   num_seen_classes=_CLASSES.value, num_teacher_classes=1000,
                                   dtype=jnp.dtype(_DTYPE.value), remat=remat)
  size = _IMAGE_SIZE.value
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, size, size, 3))))

  def residual_bytes(batch):
    def loss(params, batch_stats, images):
      (e, seen, teacher), _ = model.apply({"params": params, "batch_stats": batch_stats}, images,
                                          train=True, mutable=["batch_stats"])
      return jnp.sum(seen) + jnp.sum(teacher) + jnp.sum(e)
    images = jax.ShapeDtypeStruct((batch, size, size, 3), jnp.float32)
    vjp = jax.eval_shape(lambda p, s, x: jax.vjp(lambda p: loss(p, s, x), p)[1],
                         variables["params"], variables["batch_stats"], images)
    return sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(vjp))

  # The difference between two batch sizes removes what does not scale with the batch (weights).
  return (residual_bytes(4) - residual_bytes(2)) / 2


def main(argv):
  del argv
  mib = 2.0**20
  print(f"ResNet-{_DEPTH.value} x{_WIDTH.value}, {_IMAGE_SIZE.value} px, batch {_BATCH.value}, "
        f"{_DTYPE.value}, full recipe (student + EMA teacher + Adam)")
  print(f"| remat | arguments MiB | outputs MiB | temporaries MiB | temporaries MiB / image "
        f"({jax.default_backend()}) | saved activations MiB / image |")
  print("|---|---|---|---|---|---|")
  flops = {}
  for remat in (False, True):
    m, flops[remat], params = compiled_memory(remat)
    print(f"| {remat} | {m.argument_size_in_bytes / mib:.0f} | {m.output_size_in_bytes / mib:.0f} "
          f"| {m.temp_size_in_bytes / mib:.0f} | {m.temp_size_in_bytes / mib / _BATCH.value:.1f} "
          f"| {saved_activations_per_image(remat) / mib:.1f} |", flush=True)
  # Data parallelism all-reduces one gradient per parameter each step; FSDP all-gathers the
  # parameters for the forward and again for the backward and reduce-scatters the gradients.
  grad_mib = params * jnp.dtype(jnp.float32).itemsize / mib
  print(f"\nXLA cost analysis: {flops[False] / _BATCH.value / 1e9:.2f} GFLOP per training image "
        f"without remat, {flops[True] / _BATCH.value / 1e9:.2f} with ({jax.default_backend()})")
  print(f"trainable parameters: {params:,} = {grad_mib:.0f} MiB of float32 gradients per step: "
        f"data parallel all-reduce {grad_mib:.0f} MiB (a ring moves 2 (n-1)/n of it per device); "
        f"FSDP all-gather 2 x {grad_mib:.0f} MiB + reduce-scatter {grad_mib:.0f} MiB")


if __name__ == "__main__":
  app.run(main)
