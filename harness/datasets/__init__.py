"""Loaders that turn dataset files on disk into uint8 split arrays for the episode samplers."""
