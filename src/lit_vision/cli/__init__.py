"""Command entry points (console scripts): train, evaluate, predict, export."""
