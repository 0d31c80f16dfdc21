"""The model dataclasses of every source: what collectors measure, what the store keeps, views show and the
wire carries."""
