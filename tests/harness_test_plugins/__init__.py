"""Plugins the tests register: a small trainable NumPy model and deliberately broken plugins."""
