"""CLI commands of the sources stage (added to the root CLI by motorcade.cli)."""

COMMANDS: list = []
