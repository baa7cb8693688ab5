"""LightningDataModules, dataset readers and transform builders (one file per data family)."""
