"""`seqkit pack IMAGES_DIR OUT_DIR --size H W`: decode an image folder once into x.npy, y.npy, classes.json.

`--shard-mb MB` writes x and y as shards of about MB each; `--engine dask --scheduler ADDRESS` (or
`--engine ray`) decodes one shard per task on a cluster, into an OUT_DIR every worker sees.
Exit 0 on success, 2 on bad arguments or unreadable input (one line on stderr, naming the argument or
the file; nothing is written), 1 when the run failed on the cluster (a task that kept failing, a
timeout; nothing is committed), 130 when interrupted (nothing partial is left).
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
    pack.add_argument(
        "--processes",
        type=int,
        default=None,
        help="decode in this many processes (default: 1); with --engine dask/ray and no --scheduler, the size of the "
        "local cluster started for the run (default: one worker per core)",
    )
    pack.add_argument(
        "--engine",
        choices=("local", "dask", "ray"),
        default="local",
        help="where the decoding runs: this machine (local, the default), a Dask cluster or a Ray cluster; dask and "
        "ray write shards, one task each, and need pip install 'seqkit[dask]' or 'seqkit[ray]'",
    )
    pack.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="the cluster to use: a Dask scheduler address (tcp://host:8786) or a Ray address (ray://host:10001, auto); "
        "default: start a local cluster for the run",
    )
    pack.add_argument(
        "--shard-mb",
        type=float,
        default=None,
        metavar="MB",
        help="write each array as shard files of about MB megabytes (x-00000.npy, ...); default: one file per array "
        "with --engine local, 256 with dask or ray",
    )
    pack.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how long one task may take (on a cluster: how long the run may go without any task finishing); default 600",
    )
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
        from seqkit.engines import check_engine
        from seqkit.lifeline import WorkerError, check_timeout
        from seqkit.packing import ImageFolder, _pack, check_mode, check_resample, require_pillow
        from seqkit.pool import ITEM_TIMEOUT
        from seqkit.store import check_shard_mb

        require_pillow()
        if args.size[0] < 1 or args.size[1] < 1:
            raise ValueError(f"--size must be positive, got {args.size[0]} {args.size[1]}")
        if args.processes is not None:
            check_count(args.processes, "--processes")
        check_engine(args.engine, args.scheduler)
        shard_mb = check_shard_mb(args.shard_mb, "--shard-mb")
        timeout = check_timeout(args.timeout, "--timeout") if args.timeout is not None else ITEM_TIMEOUT
        mode = check_mode(args.mode, "--mode")
        resample = check_resample(args.resample, "--resample")
        folder = ImageFolder(args.images_dir, size=(args.size[0], args.size[1]), mode=mode, resample=resample)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the skipped images are listed below instead
            out = _pack(
                folder, args.out_dir, processes=args.processes, on_error=args.on_error, engine=args.engine,
                scheduler=args.scheduler, shard_mb=shard_mb, timeout=timeout, progress_delay=0.0,
            )
        from seqkit.store import open_dataset

        dataset = open_dataset(out)
    except KeyboardInterrupt:
        err.print("[red]interrupted[/]; nothing was written")
        return 130
    except WorkerError as exc:
        err.print(Text.assemble(("seqkit pack:", "red"), f" {exc}; nothing was written"))
        return 1
    except (OSError, ValueError, TypeError, ImportError) as exc:
        err.print(Text.assemble(("seqkit pack:", "red"), f" {exc}"))  # a Text: brackets in paths are not markup
        return 2
    skipped = dataset.meta.get("skipped") or []
    for item in skipped:
        err.print(Text(f"skipped {item['file']}: {item['error']}"))
    kept = dataset.rows("x")
    note = f" (skipped {len(skipped)} that could not be decoded, listed above)" if skipped else ""
    if dataset.meta.get("shard_mb") is not None:
        where = f"{out}: x in {len(dataset.files('x'))} shards, y in {len(dataset.files('y'))}, classes.json"
    else:
        where = f"{out}/x.npy, y.npy, classes.json"
    Console(highlight=False, soft_wrap=True).print(Text(f"packed {kept} images of {len(folder.classes)} classes into {where}{note}"))
    return 0
