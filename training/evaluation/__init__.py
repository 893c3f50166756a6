"""Evaluate: held-out splits and their scores, metrics, the model card."""
