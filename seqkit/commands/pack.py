"""`seqkit pack IMAGES_DIR OUT_DIR --size H W`: decode an image folder once into x.npy, y.npy, classes.json.

Exit 0 on success, 2 on bad arguments or unreadable input (one line on stderr, naming the argument or
the file; nothing is written), 130 when interrupted (nothing partial is left).
"""

from __future__ import annotations

import argparse
import warnings

from rich.console import Console
from rich.text import Text


def add_parser(commands) -> argparse.ArgumentParser:
    pack = commands.add_parser(
        "pack",
        help="pack a folder of images (one sub-folder per class) into .npy files for MemmapSequence",
        description="Decode IMAGES_DIR/<class>/<image> with Pillow, resize to H x W, and write OUT_DIR/x.npy "
        "(N x H x W x C), OUT_DIR/y.npy (int32 class indices), OUT_DIR/classes.json and OUT_DIR/manifest.json "
        "(row counts, shapes and checksums; written last, so a pack is complete or refused).",
    )
    pack.add_argument("images_dir", metavar="IMAGES_DIR")
    pack.add_argument("out_dir", metavar="OUT_DIR")
    pack.add_argument("--size", nargs=2, type=int, required=True, metavar=("H", "W"), help="output height and width")
    pack.add_argument("--mode", default="RGB", help="Pillow colour mode: RGB (default), L for grey, RGBA, ...")
    pack.add_argument(
        "--resample",
        default=None,
        metavar="FILTER",
        help="Pillow resampling filter: nearest, bilinear, bicubic, lanczos, box, hamming (default: what Pillow's "
        "own Image.resize uses, bicubic except for modes 1 and P), so the pack equals Image.open(p).convert(mode)"
        ".resize((W, H))",
    )
    pack.add_argument("--processes", type=int, default=None, help="decode in this many processes (default: 1)")
    pack.add_argument(
        "--on-error",
        choices=("raise", "skip"),
        default="raise",
        help="an image that cannot be decoded: stop with its name (raise, the default), or leave it out and "
        "list it at the end (skip)",
    )
    return pack


def run(args) -> int:
    err = Console(stderr=True, highlight=False, soft_wrap=True)  # one line per message, whatever the width
    try:
        from seqkit.arrays import check_count
        from seqkit.packing import ImageFolder, _pack, check_mode, check_resample, require_pillow

        require_pillow()
        if args.size[0] < 1 or args.size[1] < 1:
            raise ValueError(f"--size must be positive, got {args.size[0]} {args.size[1]}")
        if args.processes is not None:
            check_count(args.processes, "--processes")
        mode = check_mode(args.mode, "--mode")
        resample = check_resample(args.resample, "--resample")
        folder = ImageFolder(args.images_dir, size=(args.size[0], args.size[1]), mode=mode, resample=resample)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the skipped images are listed below instead
            out = _pack(folder, args.out_dir, processes=args.processes, on_error=args.on_error, progress_delay=0.0)
        from seqkit.store import open_dataset

        dataset = open_dataset(out)
    except KeyboardInterrupt:
        err.print("[red]interrupted[/]; nothing was written")
        return 130
    except (OSError, ValueError, TypeError, ImportError) as exc:
        err.print(Text.assemble(("seqkit pack:", "red"), f" {exc}"))  # a Text: brackets in paths are not markup
        return 2
    skipped = dataset.meta.get("skipped") or []
    for item in skipped:
        err.print(Text(f"skipped {item['file']}: {item['error']}"))
    kept = dataset.rows("x")
    note = f" (skipped {len(skipped)} that could not be decoded, listed above)" if skipped else ""
    Console(highlight=False, soft_wrap=True).print(
        Text(f"packed {kept} images of {len(folder.classes)} classes into {out}/x.npy, y.npy, classes.json{note}")
    )
    return 0
