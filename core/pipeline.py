"""The whole pipeline as one command: the stages configured in motorcade.toml."""

COMMANDS: list = []
