"""Turning Cortex predictors and API specs into Triton model repositories."""
