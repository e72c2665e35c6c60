"""A PyTorch reference of the `full`-recipe training step: the parity tests and the benchmark.

Written with torch ops from METHOD.md and the docstrings of `zsbir_jax.method.losses` and
`zsbir_jax.method.objective` (not from the JAX code paths): a torchvision ResNet or the
`efficientnet-lite-pytorch` EfficientNet-Lite backbone (classifier = Identity) -> Linear embedding
-> Linear classifier and teacher head; the five losses; BKD's modality weights from
`torch.autograd.grad` of L^sk and L^ph with respect to e; torch.optim.Adam with L2 weight decay;
the EMA teacher (parameters and BatchNorm buffers) in eval mode. Images are NCHW.
"""
import copy
from collections.abc import Mapping
from typing import Any

from efficientnet_lite_pytorch import EfficientNet
import numpy as np
import torch
import torch.nn.functional as F
import torchvision

from zsbir_jax.models import backbones
from zsbir_jax.models import efficientnet_lite_weights
from zsbir_jax.models import torchvision_weights

SKETCH, PHOTO = 0, 1
HEADS = ("embedding", "classifier", "teacher_head")


# Per family: the torch package's state_dict converter (`backbone.` keys of the state_dict).
_WEIGHTS = {backbones.RESNET: torchvision_weights,
            backbones.EFFICIENTNET_LITE: efficientnet_lite_weights}


def make_backbone(family: str = backbones.RESNET, depth: int = 50, variant: int = 0,
                  drop_connect_rate: float = 0.2) -> tuple[torch.nn.Module, int]:
  """(backbone with its classifier replaced by Identity, its pooled feature size).

  ResNet-`depth` of torchvision, or the package's EfficientNet-Lite`variant` with dynamic 'SAME'
  padding (TensorFlow's at any image size, as the Flax model) and no dropout (the Flax model
  applies dropout only before its classifier, which the retrieval model does not build);
  drop-connect at `drop_connect_rate` (the package's 0.2, as the Flax model's default).
  """
  if family == backbones.RESNET:
    model = {18: torchvision.models.resnet18, 50: torchvision.models.resnet50}[depth]()
    features, model.fc = model.fc.in_features, torch.nn.Identity()
  elif family == backbones.EFFICIENTNET_LITE:
    model = EfficientNet.from_name(f"efficientnet-lite{variant}", image_size=None,
                                   dropout_rate=0.0, drop_connect_rate=drop_connect_rate)
    # pylint: disable-next=protected-access
    features, model._fc = model._fc.in_features, torch.nn.Identity()
  else:
    raise ValueError(f"unknown backbone family {family!r}")
  return model, features


class RetrievalModel(torch.nn.Module):
  """Backbone features (`make_backbone`) -> e (B, D) -> seen (B, C) and teacher (B, K) logits."""

  def __init__(self, depth: int, embed_dim: int, num_seen_classes: int, num_teacher_classes: int,
               family: str = backbones.RESNET, variant: int = 0, drop_connect_rate: float = 0.2):
    super().__init__()
    self.family = family
    self.backbone, features = make_backbone(family, depth, variant, drop_connect_rate)
    self.embedding = torch.nn.Linear(features, embed_dim)
    self.classifier = torch.nn.Linear(embed_dim, num_seen_classes)
    self.teacher_head = torch.nn.Linear(embed_dim, num_teacher_classes)

  def encode(self, images: torch.Tensor) -> torch.Tensor:
    return self.embedding(self.backbone(images))

  def heads(self, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return self.classifier(e), self.teacher_head(e)


def state_dict_from_flax(params: Mapping[str, Any], batch_stats: Mapping[str, Any],
                         family: str = backbones.RESNET) -> dict[str, np.ndarray]:
  """The `RetrievalModel` state_dict (NumPy) of the Flax retrieval model's variables.

  Backbone through its family's `flax_to_torch`; Dense kernels (in, out) transposed into Linear
  weights (out, in).
  """
  backbone = _WEIGHTS[family].flax_to_torch(
      {"params": params["backbone"], "batch_stats": batch_stats["backbone"]})
  state = {f"backbone.{k}": v for k, v in backbone.items()}
  for name in HEADS:
    state[f"{name}.weight"] = np.asarray(params[name]["kernel"]).T
    state[f"{name}.bias"] = np.asarray(params[name]["bias"])
  return state


def _kl(p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
  """sum_k p_k (log p_k - log q_k) over the last axis, 0 where p_k = 0."""
  log_p = torch.log(torch.clamp(p, min=torch.finfo(p.dtype).tiny))
  return torch.where(p > 0, p * (log_p - log_q), torch.zeros_like(p)).sum(-1)


def quadruplet(e, labels, domains, margin):
  """Batch-hard domain-aware quadruplet loss of the L2-normalised e: (per_item, valid)."""
  z = e / torch.clamp(e.norm(dim=-1, keepdim=True), min=torch.finfo(e.dtype).tiny)
  sq = (z[:, None, :] - z[None, :, :]).square().sum(-1)
  dist = torch.where(sq > 0, torch.sqrt(torch.where(sq > 0, sq, torch.ones_like(sq))),
                     torch.zeros_like(sq))
  same_class = labels[:, None] == labels[None, :]
  same_domain = domains[:, None] == domains[None, :]
  pos, neg_same, neg_other = same_class & ~same_domain, ~same_class & same_domain, \
      ~same_class & ~same_domain
  valid = pos.any(1) & neg_same.any(1) & neg_other.any(1)
  inf = torch.tensor(float("inf"), dtype=e.dtype)
  d_pos = torch.where(pos, dist, -inf).amax(1)
  hinge = lambda neg: F.relu(margin + d_pos - torch.where(neg, dist, inf).amin(1))
  per_item = (hinge(neg_same) + hinge(neg_other)) / 2
  return torch.where(valid, per_item, torch.zeros_like(per_item)), valid


def per_item_terms(e, student, batch, class_targets, ema_seen_logits, config):
  """{name: (per_item (B,), valid (B,))} of cls, quad, class-wise skp and kd (kd only with
  `ema_seen_logits`); seen logits."""
  labels, domains, partner = batch["label"], batch["domain"], batch["partner"]
  seen, teacher = student.heads(e)
  every = torch.ones_like(labels, dtype=torch.bool)
  terms = {"cls": (-F.log_softmax(seen, -1).gather(1, labels[:, None])[:, 0], every),
           "quad": quadruplet(e, labels, domains, config.quad.margin)}
  t = config.skp.temperature
  terms["skp"] = (t**2 * _kl(class_targets[labels], F.log_softmax(teacher / t, -1)), every)
  if ema_seen_logits is None:  # no kd term (its weight is 0): no EMA-teacher forward
    return terms, seen
  tau = config.kd.tau
  probs = F.softmax(ema_seen_logits / tau, -1)
  has_partner = partner >= 0
  partner_probs = probs[torch.where(has_partner, partner, torch.zeros_like(partner))]
  log_q = F.log_softmax(seen / tau, -1)
  kd = tau**2 * (_kl(probs, log_q) + _kl(partner_probs, log_q)) / 2
  terms["kd"] = (torch.where(has_partner, kd, torch.zeros_like(kd)), has_partner)
  return terms, seen


def distribution_alignment(seen, labels, domains):
  """Mean over classes with both domains of the symmetric KL of their mean softmax outputs."""
  probs = F.softmax(seen, -1)
  one_hot = F.one_hot(labels, seen.shape[-1]).to(probs.dtype)

  def class_means(domain):
    members = one_hot * (domains == domain)[:, None].to(probs.dtype)
    counts = members.sum(0)
    return members.T @ probs / torch.clamp(counts, min=1)[:, None], counts > 0

  (p_sk, has_sk), (p_ph, has_ph) = class_means(SKETCH), class_means(PHOTO)
  log = lambda p: torch.log(torch.clamp(p, min=torch.finfo(p.dtype).tiny))
  sym = (_kl(p_sk, log(p_ph)) + _kl(p_ph, log(p_sk))) / 2
  both = has_sk & has_ph
  return torch.where(both, sym, torch.zeros_like(sym)).sum() / torch.clamp(both.sum(), min=1)


def total_loss(e, student, batch, class_targets, ema_seen_logits, config):
  """w^sk L^sk + w^ph L^ph + a_da L_da and its metrics (names as the JAX step's).

  L^m sums a_t * (per-item losses of valid items of domain m) / (number of valid items) over the
  terms t; G^m is the mean over domain-m items of ||dL^m/de_i||; w^m = (G^sk + G^ph) / (2 G^m),
  constants, or 1 without `modality_weighting`. The batch must hold both domains.
  """
  domains = batch["domain"]
  terms, seen = per_item_terms(e, student, batch, class_targets, ema_seen_logits, config)
  parts = []
  for domain in (SKETCH, PHOTO):
    part = 0
    for name, (per_item, valid) in terms.items():
      count = torch.clamp(valid.sum(), min=1)
      part = part + config[name].weight * (per_item * (valid & (domains == domain))).sum() / count
    parts.append(part)
  weights = [torch.ones((), dtype=e.dtype)] * 2
  if config.modality_weighting:
    grads = [torch.autograd.grad(part, e, retain_graph=True)[0] for part in parts]
    norms = []
    for domain, grad in zip((SKETCH, PHOTO), grads):
      in_domain = domains == domain
      norms.append(grad.norm(dim=-1)[in_domain].mean())
    total = norms[0] + norms[1]
    weights = [(total / (2 * torch.clamp(g, min=config.modality_eps))).detach() for g in norms]
  metrics = {f"loss_{name}": per_item.sum() / torch.clamp(valid.sum(), min=1)
             for name, (per_item, valid) in terms.items()}
  metrics["loss_da"] = distribution_alignment(seen, batch["label"], domains)
  loss = weights[0] * parts[0] + weights[1] * parts[1] + config.da.weight * metrics["loss_da"]
  metrics.update(loss=loss, modality_weight_sketch=weights[0], modality_weight_photo=weights[1])
  return loss, metrics


def learning_rate(optim: Any, steps_per_epoch: int, update: int) -> float:
  """The heads' rate of update `update` (0-based) of a run of optim.epochs epochs.

  'constant': lr. 'cosine': linear from 0 to lr over the first warmup_epochs (none: lr at once),
  then lr * (1 + cos(pi * progress)) / 2, progress running from 0 after the warm-up to 1 at the
  run's last update. 'sake': lr * 0.001^(epoch / epochs), the update's epoch.
  """
  if optim.schedule == "constant":
    return optim.lr
  if optim.schedule == "sake":
    return optim.lr * 0.001 ** ((update // steps_per_epoch) / optim.epochs)
  warmup, last = int(optim.warmup_epochs * steps_per_epoch), optim.epochs * steps_per_epoch - 1
  if update < warmup:
    return optim.lr * update / warmup
  progress = min(max((update - warmup) / max(last - warmup, 1), 0.0), 1.0)
  return 0.5 * optim.lr * (1 + np.cos(np.pi * progress))


class Trainer:
  """Student, EMA teacher (a deep copy, eval mode) and torch.optim.Adam with L2 decay, the
  backbone's rate `backbone_lr_mult` x the heads' (`learning_rate` of the config's schedule)."""

  def __init__(self, student: RetrievalModel, class_targets: torch.Tensor, config: Any,
               steps_per_epoch: int = 1):
    """`config` is an experiment config (its loss and optim blocks; one update per step)."""
    self.student, self.config = student.train(), config
    self.teacher = copy.deepcopy(student).eval()
    self.class_targets = class_targets
    self.steps_per_epoch, self.updates = steps_per_epoch, 0
    optim = config.optim
    backbone = [p for k, p in student.named_parameters() if k.startswith("backbone.")]
    heads = [p for k, p in student.named_parameters() if not k.startswith("backbone.")]
    self.optimizer = torch.optim.Adam(
        [{"params": backbone, "lr_mult": optim.backbone_lr_mult},
         {"params": heads, "lr_mult": 1.0}],
        lr=optim.lr, betas=(optim.b1, optim.b2), eps=optim.eps, weight_decay=optim.weight_decay)

  def step(self, batch: Mapping[str, torch.Tensor], return_gradients: bool = True
           ) -> tuple[dict[str, float], dict[str, Any] | None]:
    """One update; returns (metrics as floats, the gradients by parameter name or None)."""
    ema_seen_logits = None
    if self.config.loss.kd.weight:
      with torch.no_grad():
        ema_seen_logits, _ = self.teacher.heads(self.teacher.encode(batch["image"]))
    self.optimizer.zero_grad()
    e = self.student.encode(batch["image"])
    loss, metrics = total_loss(e, self.student, batch, self.class_targets, ema_seen_logits,
                               self.config.loss)
    loss.backward()
    grads = ({k: p.grad.detach().clone() for k, p in self.student.named_parameters()}
             if return_gradients else None)
    lr = learning_rate(self.config.optim, self.steps_per_epoch, self.updates)
    for group in self.optimizer.param_groups:
      group["lr"] = lr * group["lr_mult"]
    self.optimizer.step()
    self.updates += 1
    mu = self.config.loss.ema_momentum
    with torch.no_grad():
      student_state = self.student.state_dict()
      for key, value in self.teacher.state_dict().items():
        if value.is_floating_point():
          value.mul_(mu).add_(student_state[key], alpha=1 - mu)
    return {k: float(v.detach()) for k, v in metrics.items()}, grads
