"""Test-wide setup: 8 simulated CPU devices, so sharding is exercised on any machine.

XLA reads XLA_FLAGS when the backend starts, so this must run before anything imports jax.
Single-device tests use `jax.devices()[:1]`.
"""
import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_synthetic(tmp_path_factory):
  """A tiny synthetic benchmark on disk (6 seen / 3 unseen / 4 pretraining classes, 32 px)."""
  from zsbir_jax.data import synthetic  # pylint: disable=g-import-not-at-top
  root = str(tmp_path_factory.mktemp("synthetic"))
  synthetic.generate(root, synthetic.SyntheticConfig(
      seed=0, image_size=32, num_seen=6, num_unseen=3, sketches_per_class=6,
      test_sketches_per_class=2, photos_per_class=6, num_pretrain=4, pretrain_photos_per_class=8,
      pretrain_val_per_class=2))
  return root
