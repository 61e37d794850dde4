"""Device-side measurement agents: turn a model file on a device into a trustworthy latency measurement."""
