"""Evaluation: embeddings of image lists, retrieval metrics, ITQ hashing, reports and plots.

May import `domains`, `inference`, `sharding`, `data/` and `models/`; never `training/`.
"""
