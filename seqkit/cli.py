"""The `seqkit` command: argument parsing and dispatch only. Each subcommand lives in seqkit.commands."""

from __future__ import annotations

import argparse
import importlib
import sys

from seqkit.commands import COMMANDS


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seqkit", description="seqkit runtime tools")
    parser.add_argument("--version", action="version", version=f"seqkit {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"seqkit.commands.{name}").add_parser(commands)
    return parser


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("seqkit")
    except Exception:  # running from a checkout that is not installed
        from seqkit import __version__

        return __version__


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return importlib.import_module(f"seqkit.commands.{args.command}").run(args)


if __name__ == "__main__":
    sys.exit(main())
