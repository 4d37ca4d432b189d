"""The `seqkit` command: argument parsing and dispatch only. Each subcommand lives in seqkit.commands."""

from __future__ import annotations

import argparse
import importlib
import sys

from seqkit.commands import COMMANDS


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seqkit", description="seqkit runtime tools")
    commands = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"seqkit.commands.{name}").add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return importlib.import_module(f"seqkit.commands.{args.command}").run(args)


if __name__ == "__main__":
    sys.exit(main())
