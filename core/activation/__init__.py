"""activation stage."""
