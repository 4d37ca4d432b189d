"""`seqkit verify PATH...`: compare every checksum of seqkit datasets (packs, caches) with their manifest.

A folder is checked whole (its manifest must be complete; every file's size, header and CRC-32); a
`.npy` file alone is checked against its folder's manifest if it has one. Exit 0 if everything is
intact, 1 if something is damaged or incomplete (one line per path, naming the file and what is wrong),
2 if a path does not exist.
"""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.text import Text


def add_parser(commands) -> argparse.ArgumentParser:
    verify = commands.add_parser(
        "verify",
        help="check packs and caches against their manifest (sizes, headers, checksums)",
        description="Read every file of each seqkit dataset folder (or .npy file) and compare it with the "
        "folder's manifest.json: sizes, .npy headers and CRC-32 checksums.",
    )
    verify.add_argument("paths", nargs="+", metavar="PATH", help="a dataset folder (pack or cache) or a .npy file in one")
    return verify


def run(args) -> int:
    from seqkit import store

    out = Console(highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    status = 0
    for path in args.paths:
        target = store.expand(path)
        try:
            if target.is_dir():
                dataset = store.verify(target)
                files = sum(len(dataset.files(name)) for name in dataset.names) + len(dataset.manifest.get("attachments") or {})
                rows = ", ".join(f"{name}: {dataset.rows(name)} rows" for name in dataset.names)
                out.print(Text(f"{path}: intact ({files} files; {rows})"))
            else:
                array = store.open_npy(target, "file", verify=True)
                out.print(Text(f"{path}: intact ({len(array)} rows of {array.shape[1:]} {array.dtype})"))
        except FileNotFoundError as exc:
            err.print(Text.assemble(("seqkit verify:", "red"), f" {exc}"))
            status = max(status, 2)
        except (store.StoreError, ValueError, OSError) as exc:
            err.print(Text.assemble(("damaged:", "red"), f" {exc}"))
            status = max(status, 1)
    return status
