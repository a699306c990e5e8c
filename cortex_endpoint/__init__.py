"""The Cortex endpoint: POST /<api> with the raw body, in front of Triton (`tritonize serve` starts it)."""
