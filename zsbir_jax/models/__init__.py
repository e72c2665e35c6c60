"""Flax models: the ResNet backbone, the retrieval model, pretrained weights and their conversion.

May import `domains` and `sharding`; never `data/`, `method/`, `training/` or `evaluation/`.
"""
