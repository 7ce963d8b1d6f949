"""tags stage."""
