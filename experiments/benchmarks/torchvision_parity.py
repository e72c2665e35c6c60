r"""Prints how closely the converted Flax ResNets reproduce real torchvision models.

  python -m experiments.benchmarks.torchvision_parity

Random-init torchvision ResNet-18/50 (BatchNorm statistics randomised so they matter), converted
with zsbir_jax.models.torchvision_weights: relative error ||jax - torch|| / ||torch|| of eval-mode
logits at 224 x 224 and 97 x 131 in float32, and of train-mode logits and stem / layer3 / fc
gradients of sum(logits * r) in float32 and in float64 (batch 4, 64 px). The float32 gradient
errors are dominated by the problem's conditioning (torch's own float32 vs float64 column shows
the same size); float64 shows the implementations agree.
"""
from absl import app
import jax
import jax.numpy as jnp
import numpy as np
import torch
import torchvision

from zsbir_jax.models import resnet
from zsbir_jax.models import torchvision_weights

GRADS = ("conv1.weight", "layer3.1.conv2.weight", "fc.weight")


def rel(a, b) -> float:
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def random_torchvision(depth: int, seed: int = 0) -> torch.nn.Module:
  """A random-init torchvision ResNet-18/50 whose BatchNorms are not the identity."""
  torch.manual_seed(seed)
  model = {18: torchvision.models.resnet18, 50: torchvision.models.resnet50}[depth]()
  with torch.no_grad():
    for m in model.modules():
      if isinstance(m, torch.nn.BatchNorm2d):
        m.weight.uniform_(0.5, 1.5)
        m.bias.uniform_(-0.2, 0.2)
        m.running_mean.uniform_(-0.2, 0.2)
        m.running_var.uniform_(0.5, 1.5)
  return model


def train_outputs(model, depth, variables, x, probe, dtype):
  """(torch logits, torch grads, flax logits, flax grads) of one train-mode forward/backward."""
  model = model.to(torch.float64 if dtype == np.float64 else torch.float32).train()
  model.zero_grad()
  out = model(torch.from_numpy(x.astype(dtype)))
  (out * torch.from_numpy(probe.astype(dtype))).sum().backward()
  torch_grads = {k: p.grad.numpy().copy() for k, p in model.named_parameters()}
  torch_out = out.detach().numpy()
  model.float()
  with jax.enable_x64(dtype == np.float64):
    flax_model = resnet.ResNet(depth=depth, dtype=dtype)
    v = jax.tree.map(lambda a: jnp.asarray(a, dtype), variables)

    def loss(params):
      (_, logits), _ = flax_model.apply({"params": params, "batch_stats": v["batch_stats"]},
                                        jnp.asarray(x.transpose(0, 2, 3, 1), dtype), train=True,
                                        with_logits=True, mutable=["batch_stats"])
      return jnp.sum(logits * probe.astype(dtype)), logits

    grads, logits = jax.jit(jax.grad(loss, has_aux=True))(v["params"])
    flax_grads = torchvision_weights.flax_to_torch({"params": grads, "batch_stats": {}})
  return torch_out, torch_grads, np.asarray(logits), flax_grads


def main(argv):
  del argv
  torch.set_num_threads(2)
  print("| model | check | relative error |")
  print("|---|---|---|")
  for depth in (18, 50):
    model = random_torchvision(depth)
    flax_model = resnet.ResNet(depth=depth)
    template = jax.eval_shape(lambda m=flax_model: m.init(jax.random.key(0),
                                                          jnp.zeros((1, 32, 32, 3))))
    variables = torchvision_weights.torch_to_flax(
        {k: v.numpy() for k, v in model.state_dict().items()}, template)
    name = f"ResNet-{depth}"
    for size in ((224, 224), (97, 131)):
      x = np.random.RandomState(1).randn(2, 3, *size).astype(np.float32)
      with torch.no_grad():
        expected = model.eval()(torch.from_numpy(x)).numpy()
      _, logits = flax_model.apply(variables, x.transpose(0, 2, 3, 1), with_logits=True)
      print(f"| {name} | eval logits {size[0]}x{size[1]} float32 | {rel(logits, expected):.1e} |")
    rng = np.random.RandomState(2)
    x, probe = rng.randn(4, 3, 64, 64), rng.randn(4, 1000)
    t32, g32, f32, fg32 = train_outputs(model, depth, variables, x, probe, np.float32)
    t64, g64, f64, fg64 = train_outputs(model, depth, variables, x, probe, np.float64)
    print(f"| {name} | train logits float32 (torch f32 vs f64: {rel(t32, t64):.1e}) | "
          f"{rel(f32, t32):.1e} |")
    print(f"| {name} | train logits float64 | {rel(f64, t64):.1e} |")
    for key in GRADS:
      print(f"| {name} | grad {key} float32 (torch f32 vs f64: {rel(g32[key], g64[key]):.1e}) | "
            f"{rel(fg32[key], g32[key]):.1e} |")
      print(f"| {name} | grad {key} float64 | {rel(fg64[key], g64[key]):.1e} |")


if __name__ == "__main__":
  app.run(main)
