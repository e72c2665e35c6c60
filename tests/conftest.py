"""Test-wide setup: 8 simulated CPU devices, so sharding is exercised on any machine.

XLA reads XLA_FLAGS when the backend starts, so this must run before anything imports jax.
Single-device tests use `jax.devices()[:1]`.
"""
import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
