"""One module per `seqkit` subcommand. Each defines `add_parser(subparsers)` and `run(args) -> int`.

The dispatcher (seqkit.cli) imports a command's module only when it runs, so `seqkit pack --help`
never pays for what `seqkit profile` imports.
"""

COMMANDS = ("pack", "profile", "verify")
