"""CLI commands of the activation stage (added to the root CLI by motorcade.cli)."""

COMMANDS: list = []
