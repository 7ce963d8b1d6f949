"""CLI commands of the tags stage (added to the root CLI by motorcade.cli)."""

COMMANDS: list = []
