"""CLI commands of the identity stage (added to the root CLI by motorcade.cli)."""

COMMANDS: list = []
