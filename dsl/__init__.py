"""Motorcade's rule language (placeholder docstring, replaced below)."""
