"""This machine, as every part of tritonize needs it: its own addresses (local_http) and its Triton install."""
