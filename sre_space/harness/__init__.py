"""Harnesses: the product driven against the simulated shop and recordings, and scored."""
