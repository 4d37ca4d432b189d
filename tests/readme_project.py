"""What tests/test_readme.py needs to run README.md's code blocks: the blocks themselves, the projects
they run in, and the processes that run them.

Blocks. Every fenced block of README.md is read with its language and the line of its opening fence.
An HTML comment on the line(s) just before a fence, `<!-- readme-test: ... -->`, says how to run it:

    <!-- readme-test: skip: REASON -->          not run (the test pins which blocks may be skipped)
    <!-- readme-test: fixture=NAME -->          run in the fixture project NAME (see FIXTURES)
    <!-- readme-test: fixture=NAME guard -->    a Python block run as the body of
                                                `if __name__ == "__main__":`, where the README's
                                                text tells the reader to put it
    <!-- readme-test: sequential -->            a shell block whose lines build on each other: run in
                                                order in one project (by default each line is a
                                                command of its own, run in a fresh copy)

A block without a comment runs in the default project of its language: a Python block in an empty
folder (it must be complete), a shell block next to `train.py`.

Fixtures. A fixture writes files into an empty folder: the reader's own files that a block takes for
granted (a training script, images in class folders, `.npy` files) and, for Python blocks, a module
`readme_prelude.py` whose `__all__` lists exactly the names the README leaves to the reader
(`x_train`, `model`, ...). The test runs `from readme_prelude import *` and then the block's text as it
is. The reader's dataset code lives in `mydata.py`, a module without Keras, because worker processes
import it (the README says to do exactly that).

Processes. Every block runs in a subprocess of the virtualenv running the tests (`sys.executable`),
with that virtualenv's `bin/` first on PATH (so `python`, `seqlint` and `seqkit` are the installed
ones), HOME set to the project (a `~` in a block lands there, and so do Keras' and seqkit's default
caches) and no SEQKIT_CACHE_DIR or XDG_CACHE_HOME, so the defaults the README describes apply.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
# The virtualenv running the tests; not resolved: a venv's python is a symlink to the base interpreter.
VENV_BIN = Path(sys.executable).parent

SHELL_LANGUAGES = ("sh", "bash", "shell")
PYTHON_LANGUAGES = ("python", "py")
LANGUAGES = (*SHELL_LANGUAGES, *PYTHON_LANGUAGES, "toml", "yaml", "yml")

# Printed by a generated script when a worker process imports it again (as "__mp_main__").
REIMPORT_NOTE = "readme-test: script imported again as"

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)[^`]*$")
_MARKER = re.compile(r"^\s*<!--\s*readme-test:\s*(?P<body>.*?)\s*-->\s*$")


class ReadmeError(ValueError):
    """README.md cannot be read into blocks: an unclosed fence, a marker that belongs to no block..."""


@dataclass(frozen=True)
class Block:
    """One fenced code block of README.md."""

    line: int  # 1-based line of the opening fence
    language: str  # the info string's first word, lower case ("" when none)
    text: str  # the block's content, indentation of the fence removed
    skip: str | None = None  # the reason, when a marker says not to run it
    fixture: str | None = None
    guard: bool = False
    sequential: bool = False

    @property
    def id(self) -> str:
        """A readable test id: language, line and the first words of the block."""
        first = next((line.strip() for line in self.text.splitlines() if line.strip()), "")
        words = re.sub(r"[^A-Za-z0-9]+", "-", first).strip("-")[:40].rstrip("-")
        return f"{self.language or 'none'}-L{self.line}-{words}"


def read_blocks(text: str | None = None) -> list[Block]:
    """Every fenced block of README.md (or of `text`), in order, with its marker applied."""
    if text is None:
        text = README.read_text(encoding="utf-8")
    lines = text.splitlines()
    blocks: list[Block] = []
    pending: tuple[int, str] | None = None  # (line, body) of a marker not yet attached to a block
    i = 0
    while i < len(lines):
        marker = _MARKER.match(lines[i])
        fence = _FENCE.match(lines[i])
        if marker:
            if pending:
                raise ReadmeError(f"README.md:{pending[0]}: readme-test marker followed by another marker, not a block")
            pending = (i + 1, marker.group("body"))
        elif fence:
            indent, mark = fence.group("indent"), fence.group("fence")
            closing = re.compile(rf"^ {{0,3}}{re.escape(mark[0])}{{{len(mark)},}}\s*$")
            end = next((j for j in range(i + 1, len(lines)) if closing.match(lines[j])), None)
            if end is None:
                raise ReadmeError(f"README.md:{i + 1}: code block never closed")
            body = [line[len(indent):] if line.startswith(indent) else line.lstrip() for line in lines[i + 1:end]]
            options = _parse_marker(*pending) if pending else {}
            blocks.append(Block(line=i + 1, language=fence.group("info").lower(), text="\n".join(body) + "\n", **options))
            pending = None
            i = end
        elif lines[i].strip() and pending:
            raise ReadmeError(f"README.md:{pending[0]}: readme-test marker is not right before a code block")
        i += 1
    if pending:
        raise ReadmeError(f"README.md:{pending[0]}: readme-test marker at the end, before no code block")
    return blocks


def _parse_marker(line: int, body: str) -> dict:
    if body.startswith("skip:"):
        reason = body[len("skip:"):].strip()
        if not reason:
            raise ReadmeError(f"README.md:{line}: `skip:` needs a reason")
        return {"skip": reason}
    options: dict = {}
    for word in body.split():
        key, _, value = word.partition("=")
        if key == "fixture" and value in FIXTURES:
            options["fixture"] = value
        elif key in ("guard", "sequential") and not value:
            options[key] = True
        else:
            known = ", ".join(sorted(FIXTURES))
            raise ReadmeError(
                f"README.md:{line}: unknown readme-test option {word!r} (skip: REASON, fixture=NAME with NAME one of "
                f"{known}, guard, sequential)"
            )
    return options


# -- shell blocks ----------------------------------------------------------------------------------


def split_comment(line: str) -> tuple[str, str]:
    """(command, comment) of one shell line: `#` starts a comment at the start of a word, outside quotes."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
            elif char == "\\" and quote == '"':
                continue
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i + 1:].strip()
    return line.rstrip(), ""


def shell_commands(block: Block) -> list[tuple[str, str]]:
    """The block's commands as (line as written, its comment), continuation lines joined."""
    commands: list[tuple[str, str]] = []
    buffer = ""
    for raw in block.text.splitlines():
        if buffer:
            raw = buffer + raw.lstrip()
            buffer = ""
        if raw.rstrip().endswith("\\"):
            buffer = raw.rstrip()[:-1] + " "
            continue
        command, comment = split_comment(raw)
        if command.strip():
            commands.append((raw.strip(), comment))
    if buffer:
        raise ReadmeError(f"README.md:{block.line}: shell block ends with a line continuation")
    return commands


def words(command: str) -> list[str]:
    """The command's words as the shell splits them (comment left out)."""
    return shlex.split(split_comment(command)[0])


# -- fixture projects -------------------------------------------------------------------------------

# The reader's training script, as tutorials write one: the generator normalises every batch image by
# image (seqlint: SEQ101 and SEQ102), and it has what `seqkit profile` is pointed at: `setup` returns
# (dataset, model), `train_ds` a dataset and `build_model` a compiled model. Data is made in memory.
TRAINING_SCRIPT = '''\
"""Train a small image classifier; the generator is the slow kind seqlint is for."""
import math

import keras
import numpy as np

MEAN = np.array([0.49, 0.48, 0.45], dtype=np.float32)
STD = np.array([0.25, 0.24, 0.26], dtype=np.float32)


class ImageSequence(keras.utils.PyDataset):
    def __init__(self, images, labels, batch_size=32, **kwargs):
        super().__init__(**kwargs)
        self.images = images
        self.labels = labels
        self.batch_size = batch_size

    def __len__(self):
        return math.ceil(len(self.images) / self.batch_size)

    def __getitem__(self, idx):
        batch = self.images[idx * self.batch_size:(idx + 1) * self.batch_size]
        labels = self.labels[idx * self.batch_size:(idx + 1) * self.batch_size]
        x = np.empty(batch.shape, dtype=np.float32)
        for i in range(batch.shape[0]):
            x[i] = (batch[i] / 255.0 - MEAN) / STD
        return x, labels


def load_data():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (256, 16, 16, 3), dtype=np.uint8), rng.integers(0, 4, 256)


def build_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))
    features = keras.layers.GlobalAveragePooling2D()(inputs)
    outputs = keras.layers.Dense(4, activation="softmax")(features)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    return model


def train_ds():
    return ImageSequence(*load_data())


def setup():
    return train_ds(), build_model()


if __name__ == "__main__":
    train, model = setup()
    model.fit(train, epochs=2)
'''

# The reader's own per-batch code for the runtime block: no Keras import, so that
# MultiprocessSequence's and preprocess_once's workers import it in milliseconds.
READER_MODULE = '''\
"""The reader's dataset code: an augmenting dataset and a feature function (numpy only)."""
import numpy as np


def extract_features(images):
    """Row-wise: the mean colour and the brightest value of each image."""
    flat = images.reshape(len(images), -1, images.shape[-1]).astype("float32")
    return np.concatenate([flat.mean(axis=1), flat.max(axis=1)], axis=1)


class MyAugmentingDataset:
    """Random horizontal flips per sample; samples reshuffled at each epoch's end."""

    def __init__(self, x, y, batch_size=32, seed=0):
        self.x, self.y, self.batch_size = x, y, batch_size
        self.seed, self.epoch = seed, 0
        self.order = np.arange(len(x))

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, index, rng=None):
        rows = np.sort(self.order[index * self.batch_size:(index + 1) * self.batch_size])
        x = self.x[rows]
        flip = rng.random(len(rows)) < 0.5
        return np.where(flip[:, None, None, None], x[:, :, ::-1], x), self.y[rows]

    def on_epoch_end(self):
        self.epoch += 1
        self.order = np.random.default_rng((self.seed, self.epoch)).permutation(len(self.x))
'''

RUNTIME_PRELUDE = '''\
"""The names README.md's runtime block leaves to the reader."""
import keras
import numpy as np

import mydata
from mydata import extract_features

__all__ = ["x_train", "y_train", "MEAN", "STD", "model", "x", "extract_features", "MyAugmentingDataset"]

_rng = np.random.default_rng(0)
x_train = _rng.integers(0, 256, (256, 8, 8, 3), dtype=np.uint8)   # images
y_train = _rng.integers(0, 10, 256)                                # labels of 10 classes
MEAN = np.array([0.49, 0.48, 0.45], dtype=np.float32)
STD = np.array([0.25, 0.24, 0.26], dtype=np.float32)
x = x_train                                                        # what extract_features reads

keras.utils.set_random_seed(0)
_inputs = keras.Input((8, 8, 3))
model = keras.Model(_inputs, keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(_inputs)))
model.compile(optimizer="sgd", loss="categorical_crossentropy")


def MyAugmentingDataset(*_reader_arguments):
    """`MyAugmentingDataset(...)`: the "..." are the reader's; here, the same images and one-hot labels."""
    images = ((x_train / 255.0 - MEAN) / STD).astype("float32")
    return mydata.MyAugmentingDataset(images, np.eye(10, dtype="float32")[y_train], batch_size=64)
'''

# The profile block's dataset: train.py's slow generator without the Keras base class, in a module of
# its own (as the README advises for anything worker processes import): the profile's worker trials
# then start in milliseconds instead of importing TensorFlow each. The `seqkit profile` lines profile
# train.py's Keras class itself.
PROFILE_DATASET = '''\
"""The reader's generator, numpy only: normalises every batch image by image."""
import math

import numpy as np

MEAN = np.array([0.49, 0.48, 0.45], dtype=np.float32)
STD = np.array([0.25, 0.24, 0.26], dtype=np.float32)


class Images:
    def __init__(self, images, labels, batch_size=32):
        self.images, self.labels, self.batch_size = images, labels, batch_size

    def __len__(self):
        return math.ceil(len(self.images) / self.batch_size)

    def __getitem__(self, idx):
        batch = self.images[idx * self.batch_size:(idx + 1) * self.batch_size]
        x = np.empty(batch.shape, dtype=np.float32)
        for i in range(batch.shape[0]):
            x[i] = (batch[i] / 255.0 - MEAN) / STD
        return x, self.labels[idx * self.batch_size:(idx + 1) * self.batch_size]
'''

# `seqkit.profile` takes about 10 s by default; the block runs with a 1 s budget, as `--seconds 1`
# does for the `seqkit profile` lines. Nothing else about the call changes.
PROFILE_PRELUDE = '''\
"""The names README.md's `seqkit.profile` block leaves to the reader: a dataset and a compiled model."""
import functools

import seqkit
from mydata import Images
from train import build_model, load_data

__all__ = ["train", "model"]

seqkit.profile = functools.partial(seqkit.profile, seconds=1)   # the test's budget (README: about 10 s)
train = Images(*load_data())
model = build_model()
'''


def _write(folder: Path, name: str, text: str) -> None:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def training_script(folder: Path) -> None:
    _write(folder, "train.py", TRAINING_SCRIPT)


def runtime(folder: Path) -> None:
    """The runtime block's world: the reader's module, class folders of PNG images, the prelude."""
    import numpy as np
    from PIL import Image

    _write(folder, "mydata.py", READER_MODULE)
    _write(folder, "readme_prelude.py", RUNTIME_PRELUDE)
    rng = np.random.default_rng(1)
    for label in ("circles", "squares"):
        (folder / "images" / label).mkdir(parents=True)
        for i in range(3):
            height, width = 20 + 4 * i, 28 - 3 * i  # sizes differ: ImageFolder resizes them
            Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(folder / "images" / label / f"{i}.png")


def sample_files(folder: Path) -> None:
    """`data/<id>.npy`, one small array per sample, as a file-per-sample generator reads them."""
    import numpy as np

    (folder / "data").mkdir()
    for i in range(12):
        np.save(folder / "data" / f"sample_{i:03d}.npy", np.full((4, 4), i, dtype=np.float32))


def profile(folder: Path) -> None:
    training_script(folder)
    _write(folder, "mydata.py", PROFILE_DATASET)
    _write(folder, "readme_prelude.py", PROFILE_PRELUDE)


def empty(folder: Path) -> None:
    """Nothing: the block must be complete in itself."""


FIXTURES: dict[str, Callable[[Path], None]] = {
    "training-script": training_script,
    "runtime": runtime,
    "sample-files": sample_files,
    "profile": profile,
    "empty": empty,
}


def fixture_of(block: Block) -> str:
    if block.fixture:
        return block.fixture
    return "training-script" if block.language in SHELL_LANGUAGES else "empty"


def make_project(folder: Path, fixture: str) -> Path:
    folder.mkdir(parents=True)
    FIXTURES[fixture](folder)
    return folder


def has_prelude(project: Path) -> bool:
    return (project / "readme_prelude.py").exists()


# -- running ----------------------------------------------------------------------------------------


def child_env(home: Path, path_first: Path = VENV_BIN) -> dict[str, str]:
    """The environment of a block's process: `path_first` (a virtualenv's bin/) first on PATH, HOME set
    to the project, the cache defaults the README describes, quiet TensorFlow."""
    drop = ("SEQKIT_CACHE_DIR", "XDG_CACHE_HOME", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")
    env = {key: value for key, value in os.environ.items() if key not in drop}
    env.update(
        HOME=str(home),
        PATH=f"{path_first}{os.pathsep}{os.environ.get('PATH', '')}",
        TF_CPP_MIN_LOG_LEVEL="3",
        KERAS_BACKEND="tensorflow",
        PYTHONUNBUFFERED="1",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_INPUT="1",
        COLUMNS="160",  # rich's tables off a terminal: wide enough that no cell the test reads is cut
    )
    return env


@dataclass
class Run:
    """One finished command."""

    command: str
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    pid: int = 0
    cwd: Path | None = None

    def describe(self) -> str:
        tail = lambda text: text if len(text) < 6000 else "...\n" + text[-6000:]  # noqa: E731
        return (
            f"$ {self.command}\n(in {self.cwd}, exit {self.returncode}, {self.seconds:.1f} s)\n"
            f"--- stdout ---\n{tail(self.stdout)}\n--- stderr ---\n{tail(self.stderr)}"
        )


def run(argv: list[str], cwd: Path, env: dict[str, str], *, display: str | None = None, timeout: float = 300) -> Run:
    """Run `argv` to the end (killed after `timeout` seconds: a hang fails the test, it does not stall it)."""
    start = time.perf_counter()
    with subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          stdin=subprocess.DEVNULL) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
            stderr += f"\nreadme-test: killed after {timeout} s"
    return Run(display or shlex.join(argv), process.returncode, stdout, stderr, time.perf_counter() - start,
               process.pid, cwd)


def run_shell(command: str, cwd: Path, env: dict[str, str], timeout: float = 300) -> Run:
    """One README shell line, run by sh as the reader's shell would."""
    return run(["sh", "-c", command], cwd, env, display=command, timeout=timeout)


def python_script(block: Block, prelude: bool) -> str:
    """The script a Python block runs as: the prelude's names, then the block's text as it is; under
    `if __name__ == "__main__":` when the block is marked `guard`. Either way the script says when a
    worker process imports it again, which an unguarded block must not need."""
    head = (
        f"# README.md, the block at line {block.line}, as run by tests/test_readme.py\n"
        'if __name__ != "__main__":\n'
        "    import sys\n"
        f'    print("{REIMPORT_NOTE}", repr(__name__), file=sys.stderr)\n'
    )
    body = ("from readme_prelude import *  # noqa: F403  the names the README leaves to the reader\n" if prelude else "")
    body += block.text
    if block.guard:
        return head + 'if __name__ == "__main__":\n' + textwrap.indent(body, "    ", lambda line: True)
    return head + body


@dataclass
class ShmCheck:
    """Shared-memory segments a process left behind (seqkit names them `seqkit_<pid>_*`)."""

    pid: int
    left: list[str] = field(default_factory=list)

    @classmethod
    def after(cls, pid: int) -> "ShmCheck":
        shm = Path("/dev/shm")
        left = sorted(p.name for p in shm.glob(f"seqkit_{pid}_*")) if shm.is_dir() else []
        return cls(pid, left)
