"""SNAIL (Mishra et al. 2018) for the harness; the model lives in harness_snail.model."""
