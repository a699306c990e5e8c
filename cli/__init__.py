"""tritonize's command line, launchers and client."""
