"""`tritonize tune`: instances x batch size x batch delay under a latency budget (docs/tune.md)."""
