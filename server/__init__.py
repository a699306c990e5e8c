"""Launchers: one module per way of running tritonserver, behind one interface."""
