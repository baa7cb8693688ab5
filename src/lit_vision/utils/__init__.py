"""Small shared helpers (file writing, metric conversion)."""
