"""The base of every error the workbench reports to a user (CLI and UI show its message as is)."""


class WorkbenchError(Exception):
    """An expected failure with a message written for the user: bad input, a missing model, a refused action."""
