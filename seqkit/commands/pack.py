"""`seqkit pack IMAGES_DIR OUT_DIR --size H W`: decode an image folder once into x.npy, y.npy, classes.json.

Exit 0 on success, 2 on bad arguments or unreadable input (with the reason on stderr), 130 when
interrupted (nothing partial is left).
"""

from __future__ import annotations

import argparse

from rich.console import Console


def add_parser(commands) -> argparse.ArgumentParser:
    pack = commands.add_parser(
        "pack",
        help="pack a folder of images (one sub-folder per class) into .npy files for MemmapSequence",
        description="Decode IMAGES_DIR/<class>/<image> with Pillow, resize to H x W, and write OUT_DIR/x.npy "
        "(uint8, N x H x W x C), OUT_DIR/y.npy (int32 class indices) and OUT_DIR/classes.json.",
    )
    pack.add_argument("images_dir", metavar="IMAGES_DIR")
    pack.add_argument("out_dir", metavar="OUT_DIR")
    pack.add_argument("--size", nargs=2, type=int, required=True, metavar=("H", "W"), help="output height and width")
    pack.add_argument("--mode", default="RGB", help="Pillow colour mode: RGB (default), L for grey, RGBA")
    pack.add_argument("--processes", type=int, default=None, help="decode in this many processes (default: 1)")
    return pack


def run(args) -> int:
    from seqkit.pack import ImageFolder, _pack

    err = Console(stderr=True)
    try:
        if args.size[0] < 1 or args.size[1] < 1:
            raise ValueError(f"--size must be positive, got {args.size[0]} {args.size[1]}")
        folder = ImageFolder(args.images_dir, size=(args.size[0], args.size[1]), mode=args.mode)
        out = _pack(folder, args.out_dir, processes=args.processes, progress_delay=0.0)
    except KeyboardInterrupt:
        err.print("[red]interrupted[/]; nothing was written")
        return 130
    except (OSError, ValueError, TypeError) as exc:
        err.print(f"[red]seqkit pack:[/] {exc}", highlight=False)
        return 2
    Console().print(
        f"packed {len(folder.files)} images of {len(folder.classes)} classes into {out}/x.npy, y.npy, classes.json",
        highlight=False,
    )
    return 0
