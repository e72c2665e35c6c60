"""Hand-made class-balanced batch layouts for the training-step tests."""
import numpy as np

from zsbir_jax.data.lists import PHOTO, SKETCH


def pk_layout(classes, k: int) -> dict[str, np.ndarray]:
  """'label', 'domain', 'partner' (int32) of P x K batches laid out as the sampler does.

  Each class holds K sketches then K photos; sketch j of a class partners photo j and vice versa.
  """
  labels, domains, partner = [], [], []
  for c in classes:
    base = len(labels)
    for domain in (SKETCH, PHOTO):
      for j in range(k):
        labels.append(c)
        domains.append(domain)
        partner.append(base + (k + j if domain == SKETCH else j))
  return {"label": np.array(labels, np.int32), "domain": np.array(domains, np.int32),
          "partner": np.array(partner, np.int32)}
