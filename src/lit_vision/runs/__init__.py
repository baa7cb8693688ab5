"""Orchestration: fit and test a configured run, run folders, resume, sweep summaries, Hydra callbacks."""
