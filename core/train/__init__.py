"""Training data, losses and training loops."""
