"""The retrieval model over either backbone family: feature size, SVD heads, the saved spec."""
import numpy as np
import jax
import jax.numpy as jnp

from zsbir_jax.models import backbones
from zsbir_jax.models import pretrained
from zsbir_jax.models import retrieval


def test_efficientnet_lite_backbone_gives_its_feature_size_and_pretrained_logits(tmp_path):
  """The heads read the backbone's own feature size (160 here; Lite0: 1280), and the
  SVD-initialised teacher head reproduces the pretrained classifier's logits when D >= K."""
  spec = pretrained.BackboneSpec(family=backbones.EFFICIENTNET_LITE, variant=0, width=0.125,
                                 num_classes=10, source="unit-test")
  x = jax.random.normal(jax.random.key(1), (3, 32, 32, 3))
  backbone = spec.model()
  backbone_variables = backbone.init(jax.random.key(0), x)
  model = retrieval.RetrievalModel(family=backbones.EFFICIENTNET_LITE, variant=0, width=0.125,
                                   embed_dim=16, num_seen_classes=4, num_teacher_classes=10)
  variables = model.init(jax.random.key(2), x)
  assert variables["params"]["embedding"]["kernel"].shape == (backbone.feature_dim, 16) == (160, 16)
  params, batch_stats = retrieval.from_pretrained(variables["params"], variables["batch_stats"],
                                                  backbone_variables)
  _, _, teacher_logits = model.apply({"params": params, "batch_stats": batch_stats}, x)
  _, expected = backbone.apply(backbone_variables, x, with_logits=True)
  np.testing.assert_allclose(teacher_logits, expected, rtol=1e-4, atol=1e-5)

  retrieval.save_spec(model, str(tmp_path))
  assert retrieval.load_spec(str(tmp_path)) == model
