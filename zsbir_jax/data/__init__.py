"""Data: list files and splits, the synthetic benchmark, sources, sampling, augmentation, grain.

May import `domains` and `sharding` only (never `models/`, `method/`, `training/`).
"""
