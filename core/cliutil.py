"""Helpers shared by the ``workbench`` sub-commands: registering a command and printing human or JSON output."""

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any


def out(text: str, end: str = "\n") -> None:
    """Write to stdout (the CLI's only output channel; errors go to stderr); ``end=""`` for streamed pieces."""
    sys.stdout.write(text + end)
    sys.stdout.flush()


def emit(args: argparse.Namespace, payload: Any, human: str) -> None:
    """Print ``payload`` as JSON when ``--json`` was given, else the human-readable text."""
    out(json.dumps(payload, indent=2, ensure_ascii=False) if args.json else human)


def add_command(
    group: argparse._SubParsersAction, name: str, func: Callable[[argparse.Namespace], int], help_text: str
) -> argparse.ArgumentParser:
    """Add a sub-command with a ``--json`` flag whose handler ``func(args)`` returns the exit status."""
    parser = group.add_parser(name, help=help_text, description=help_text)
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.set_defaults(func=func)
    return parser


def config_option(parser: argparse.ArgumentParser, config_cls: type, name: str, *flags: str, **overrides: Any) -> None:
    """Add a flag for one config field: default, help, type and choices come from the field's metadata.

    Args:
        parser: The sub-command's parser.
        config_cls: A config dataclass (``core.config``).
        name: The field name.
        *flags: Flag spellings (default ``--field-name``).
        **overrides: ``argparse`` keywords that win over the field's (e.g. ``type`` for an optional int).
    """
    spec = config_cls.spec(name)
    kwargs: dict[str, Any] = {"help": spec.help, "default": spec.default}
    if spec.choices is not None:
        kwargs["choices"] = spec.choices
    if isinstance(spec.default, bool):
        kwargs["action"] = argparse.BooleanOptionalAction
    elif isinstance(spec.default, (int, float, str)):
        kwargs["type"] = type(spec.default)
    kwargs.update(overrides)
    parser.add_argument(*(flags or ("--" + name.replace("_", "-"),)), dest=name, **kwargs)
