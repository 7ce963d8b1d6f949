"""CLI commands of the segments stage (added to the root CLI by motorcade.cli)."""

COMMANDS: list = []
