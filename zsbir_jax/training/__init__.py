"""The training engine: state, the jitted step, optimizers, checkpoints, the loop, evaluators.

Also backbone pretraining (a classification loss run by the same engine). May import every
other package; nothing outside `training/` and `experiments/` imports it.
"""
