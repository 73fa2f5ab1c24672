"""linkplane's control-plane server."""
