"""Optimizers with parameter groups and learning-rate schedulers built from the optim/scheduler config groups."""
