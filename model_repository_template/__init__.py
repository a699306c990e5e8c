"""Files copied verbatim into every generated model repository (never imported by the CLI)."""
