"""LightningModules: one per task (classification, regression, segmentation) on a small shared base."""
