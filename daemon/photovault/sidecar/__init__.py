"""sidecar stage."""
