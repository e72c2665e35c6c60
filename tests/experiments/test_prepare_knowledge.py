"""prepare_knowledge as a real subprocess: the table equals the teacher's per-photo softmax means."""
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np

from zsbir_jax import domains
from zsbir_jax.data import augment
from zsbir_jax.data import images
from zsbir_jax.data import lists
from zsbir_jax.method import knowledge
from zsbir_jax.models import pretrained

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_prepare_knowledge_command(tiny_synthetic, tmp_path):
  spec = pretrained.BackboneSpec(depth=18, width=0.125, num_classes=5, source="test-teacher")
  variables = spec.model().init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
  pretrained.save(str(tmp_path / "teacher"), variables, spec)
  output = str(tmp_path / "table.npz")
  result = subprocess.run(
      [sys.executable, "-m", "experiments.prepare_knowledge", f"--root={tiny_synthetic}",
       "--split=synthetic", f"--backbone={tmp_path / 'teacher'}", f"--output={output}",
       "--image_size=32", "--batch_size=8", "--temperature=2.0"],
      cwd=REPO, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr
  data = lists.load_split(tiny_synthetic, "synthetic")
  table = knowledge.load(output, data.seen_classes)
  assert table.targets.shape == (6, 5) and table.teacher == "test-teacher"

  photos = [r for r in data.train if r.domain == domains.PHOTO]
  config = augment.AugmentConfig(size=32)
  x = np.stack([augment.preprocess(images.load_rgb(r.path), domains.PHOTO, config) for r in photos])
  _, logits = spec.model().apply(variables, x, with_logits=True)
  probs = jax.nn.softmax(np.asarray(logits, np.float64) / 2.0)
  for c in range(6):
    mean = np.mean([p for p, r in zip(probs, photos) if r.label == c], axis=0)
    np.testing.assert_allclose(table.targets[c], mean, rtol=1e-5)
