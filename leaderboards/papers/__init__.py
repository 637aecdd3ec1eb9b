"""The papers' published numbers, one ``<table>.csv`` per built-in table: installed as ``harness.papers``."""
