"""CLI commands of the feedback stage (added to the root CLI by motorcade.cli)."""

COMMANDS: list = []
