r"""Embedding (inference) speed: the jitted JAX `embed` against PyTorch eval mode, ResNet-50.

  python -m experiments.benchmarks.embed            # batch 32 at 224 px

Both sides compute the same thing from the same weights: ResNet-50 in eval mode -> embedding
(D 512) -> L2 normalisation, float32 (`retrieval.embed` and
`experiments/benchmarks/torch_reference.py` under torch.no_grad()). The outputs are compared
once (relative error printed), then each side is timed over several batches after warm-up.
"""
from absl import app
from absl import flags
import jax
import numpy as np
import torch
import torch.nn.functional as F

from experiments.benchmarks import timing
from experiments.benchmarks import torch_reference
from zsbir_jax.models import retrieval

_DEPTH = flags.DEFINE_integer("depth", 50, "ResNet depth.")
_BATCH = flags.DEFINE_integer("batch_size", 32, "Images per batch.")
_SIZE = flags.DEFINE_integer("image_size", 224, "Image side in pixels.")
_STEPS = flags.DEFINE_integer("steps", 5, "Timed batches per side.")
_WARMUP = flags.DEFINE_integer("warmup", 2, "Untimed batches first.")
_THREADS = flags.DEFINE_integer("torch_threads", 0, "torch.set_num_threads; 0 keeps torch's.")

EMBED_DIM, SEEN, TEACHER = 512, 100, 1000


def main(argv):
  del argv
  if _THREADS.value:
    torch.set_num_threads(_THREADS.value)
  model = retrieval.RetrievalModel(depth=_DEPTH.value, embed_dim=EMBED_DIM,
                                   num_seen_classes=SEEN, num_teacher_classes=TEACHER)
  size, batch = _SIZE.value, _BATCH.value
  variables = jax.device_get(jax.jit(lambda: model.init(
      jax.random.key(0), np.zeros((1, size, size, 3), np.float32)))())
  images = np.random.RandomState(0).rand(batch, size, size, 3).astype(np.float32)
  jax_embed = jax.jit(lambda v, x: retrieval.embed(model, v, x))
  device_images = jax.device_put(images)

  student = torch_reference.RetrievalModel(_DEPTH.value, EMBED_DIM, SEEN, TEACHER).eval()
  student.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in
                           torch_reference.state_dict_from_flax(
                               variables["params"], variables["batch_stats"]).items()})
  torch_images = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())

  def torch_embed():
    with torch.no_grad():
      return F.normalize(student.encode(torch_images), dim=-1)

  z_jax = np.asarray(jax_embed(variables, device_images))
  z_torch = torch_embed().numpy()
  error = np.linalg.norm(z_jax - z_torch) / np.linalg.norm(z_torch)
  jax_s = timing.median_seconds(lambda: jax.block_until_ready(jax_embed(variables, device_images)),
                           _STEPS.value, _WARMUP.value)
  torch_s = timing.median_seconds(torch_embed, _STEPS.value, _WARMUP.value)
  print(f"ResNet-{_DEPTH.value} eval mode -> D {EMBED_DIM}, float32, batch {batch} at {size} px; "
        f"jax {jax.__version__} on {jax.devices()[0].device_kind}, torch {torch.__version__} "
        f"with {torch.get_num_threads()} threads; median of {_STEPS.value} batches; "
        f"embeddings agree to {error:.1e} (relative)")
  print("\n| JAX img/s | PyTorch img/s | JAX / PyTorch |\n|---|---|---|")
  print(f"| {batch / jax_s:.1f} | {batch / torch_s:.1f} | {torch_s / jax_s:.2f} |")


if __name__ == "__main__":
  app.run(main)
