"""Pictures made from model outputs (segmentation masks and overlays), reusable outside training."""
