"""The farm: Ray actors that drive measurement agents, scheduling, and durable latency tables."""
