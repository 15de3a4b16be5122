"""Reference calculators that label configurations for training."""
