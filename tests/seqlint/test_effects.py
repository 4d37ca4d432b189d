"""The effect tables: what counts as random, as a file read, and as pure numpy."""

from __future__ import annotations

import subprocess
import sys

import pytest

from seqlint.analysis import effects


@pytest.mark.parametrize(
    "name",
    [
        "numpy.random.rand",
        "numpy.random.shuffle",
        "numpy.random.seed",
        "np.random.normal",  # notebook code without its import
        "random.random",
        "random.choice",
        "tensorflow.random.uniform",
        "tensorflow.image.random_flip_left_right",
        "tensorflow.image.random_brightness",
        "keras.layers.RandomFlip",
        "albumentations.HorizontalFlip",
        "iaa.Fliplr",  # notebook code without its import
        "imgaug.augmenters.Fliplr",
        "torchvision.transforms.RandomResizedCrop",
        "torchvision.transforms.ColorJitter",
        "skimage.util.random_noise",
        "sklearn.utils.shuffle",
        # Reproducible for a seed, but different every batch: not to be cached either.
        "tensorflow.image.stateless_random_flip_left_right",
        "tensorflow.random.stateless_uniform",
    ],
)
def test_random_calls(name: str) -> None:
    assert effects.is_random_call(name)


@pytest.mark.parametrize(
    "name",
    [
        "numpy.random.default_rng",  # seeded explicit generator: `rng = np.random.default_rng(seed)` is fine
        "numpy.random.Generator",
        "numpy.random.RandomState",
        "numpy.random.SeedSequence",
        "random.Random",
        "tensorflow.random.Generator",
        "albumentations.Compose",
        "albumentations.Normalize",
        "numpy.clip",
        "cv2.flip",
        "randomize",  # a user function whose name merely starts like the module
        "A.dot",  # an unimported `A` is as often a matrix as albumentations
        "random",
        None,
        "",
    ],
)
def test_not_random_calls(name: str | None) -> None:
    assert not effects.is_random_call(name)


def test_global_rng_is_the_process_wide_subset() -> None:
    assert effects.is_global_rng_call("numpy.random.randint")
    assert effects.is_global_rng_call("random.shuffle")
    # Random, but with their own state or transform objects: not SEQ301's concern.
    assert not effects.is_global_rng_call("albumentations.HorizontalFlip")
    assert not effects.is_global_rng_call("numpy.random.default_rng")
    assert not effects.is_global_rng_call("random.SystemRandom")
    assert not effects.is_global_rng_call("tensorflow.random.stateless_uniform")
    assert effects.is_rng_seeding_call("numpy.random.seed")
    assert not effects.is_rng_seeding_call("numpy.random.rand")


def test_generator_equivalents() -> None:
    assert effects.generator_equivalent("numpy.random.randint") == "integers"
    assert effects.generator_equivalent("numpy.random.randn") == "standard_normal"
    assert effects.generator_equivalent("np.random.uniform") == "uniform"
    assert effects.generator_equivalent("random.gauss") == "normal"
    # random.randint is inclusive of its upper bound and Generator.integers is not: no blind rename.
    assert effects.generator_equivalent("random.randint") is None
    assert effects.takes_shape_varargs("numpy.random.rand")
    assert not effects.takes_shape_varargs("numpy.random.normal")
    assert effects.is_generator_method("integers")
    assert not effects.is_generator_method("reshape")


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("numpy.load", "npy"),
        ("np.load", "npy"),
        ("numpy.fromfile", "binary"),
        ("open", "file"),
        ("cv2.imread", "image"),
        ("PIL.Image.open", "image"),
        ("imageio.v3.imread", "image"),
        ("skimage.io.imread", "image"),
        ("keras.utils.load_img", "image"),
        ("h5py.File", "hdf5"),
        ("pandas.read_csv", "csv"),
        ("pandas.read_parquet", "table"),
        ("pandas.read_orc", "table"),  # by the pandas.read_ family
        ("librosa.load", "audio"),
        ("soundfile.read", "audio"),
        ("scipy.io.wavfile.read", "audio"),
        ("nibabel.load", "medical"),
        ("pydicom.dcmread", "medical"),
        ("SimpleITK.ReadImage", "medical"),
        ("tensorflow.io.read_file", "file"),
        ("tensorflow.io.gfile.GFile", "file"),
        ("pickle.load", "pickle"),
        ("json.load", "json"),
        ("joblib.load", "pickle"),
        ("torch.load", "tensor"),
    ],
)
def test_io_calls(name: str, kind: str) -> None:
    assert effects.io_kind(name) == kind
    assert effects.is_io_call(name)


def test_io_methods() -> None:
    assert effects.io_method_kind("read_bytes") == "file"
    assert effects.io_method_kind("read_text") == "text"
    assert effects.io_method_kind("read") is None  # a file object's read: its open() is the finding


@pytest.mark.parametrize(
    "name", ["pickle.loads", "json.loads", "pandas.read_sql", "cv2.resize", "numpy.save", "opener", None]
)
def test_not_io_calls(name: str | None) -> None:
    assert effects.io_kind(name) is None
    assert not effects.is_io_call(name)


def test_pure_numpy() -> None:
    for name in ["numpy.clip", "numpy.log1p", "numpy.sqrt", "numpy.stack", "numpy.expand_dims",
                 "numpy.transpose", "numpy.reshape", "numpy.eye", "numpy.take", "numpy.linalg.norm",
                 "np.fft.rfft", "np.concatenate"]:
        assert effects.is_pure_numpy(name), name
    # Randomness, uninitialised memory and file reads are not pure.
    for name in ["numpy.random.rand", "numpy.empty", "numpy.load", "numpy.clipper", "math.sqrt", None]:
        assert not effects.is_pure_numpy(name), name
    assert effects.is_pure_array_method("astype")
    assert not effects.is_pure_array_method("fill")


def test_tables_are_consistent() -> None:
    tables = effects._tables()
    # Nothing may be both deterministic and random, or both a file read and pure.
    for name in tables.pure_numpy.names:
        assert not effects.is_random_call(name), name
        assert not effects.is_io_call(name), name
    for name in tables.io_names:
        assert not effects.is_pure_numpy(name), name
    # Every replacement method exists on numpy.random.Generator (checked against the name list, so this
    # test does not need numpy either).
    generator_api = set(tables.generator_methods) | {"multivariate_normal", "dirichlet"}
    for old, new in tables.generator_equivalent.items():
        assert new in generator_api, (old, new)
        assert effects.is_global_rng_call(old), old
    assert effects._tables() is tables  # parsed once


def test_importing_effects_imports_no_numeric_library() -> None:
    code = (
        "import sys, seqlint.analysis.effects as e; e.is_random_call('numpy.random.rand'); "
        "bad = [m for m in ('numpy', 'tensorflow', 'keras') if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("name", "layers"),
    [
        ("albumentations.HorizontalFlip", ["RandomFlip"]),
        ("tensorflow.image.random_flip_left_right", ["RandomFlip"]),
        ("tensorflow.image.random_brightness", ["RandomBrightness"]),
        ("torchvision.transforms.RandomResizedCrop", ["RandomZoom", "RandomCrop"]),
        ("albumentations.ShiftScaleRotate", ["RandomRotation", "RandomZoom", "RandomTranslation"]),
        ("skimage.util.random_noise", ["GaussianNoise"]),
        ("rotation_range", ["RandomRotation"]),  # ImageDataGenerator keywords map too
        ("np.mean", []),
    ],
)
def test_augmentation_layers(name: str, layers: list[str]) -> None:
    assert effects.augmentation_layers(name) == layers


def test_augmentation_layers_exist_in_keras_3() -> None:
    # The names are data; check them against the Keras installed for the runtime (read from its source
    # tree rather than imported: importing keras would cost seconds for a table check).
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("keras")
    if spec is None or spec.origin is None:
        pytest.skip("keras is not installed")
    api = Path(spec.origin).parent / "layers" / "__init__.py"
    exported = api.read_text(encoding="utf-8") if api.exists() else ""
    layers = {layer for values in effects._tables().augmentation_layers.values() for layer in values}
    missing = sorted(layer for layer in layers if f" {layer} " not in exported and f" {layer}\n" not in exported)
    assert missing == []


def test_read_only_calls() -> None:
    for name in ["len", "numpy.mean", "cv2.resize", "tensorflow.convert_to_tensor", "cv2.imread", "np.stack"]:
        assert effects.is_read_only_call(name), name
    # Drawing into an image, shuffling, and unknown user code may write.
    for name in ["cv2.rectangle", "numpy.random.shuffle", "augment", "self.normalise", None]:
        assert not effects.is_read_only_call(name), name


def test_augmentation_methods() -> None:
    assert effects.is_augmentation_method("random_transform")
    assert effects.is_augmentation_method("get_random_transform")  # ImageDataGenerator's two-step API
    assert not effects.is_augmentation_method("apply_transform")  # deterministic given its parameters


def test_writes_and_views() -> None:
    assert effects.writes_first_argument("numpy.copyto")
    assert effects.writes_first_argument("np.random.shuffle")
    assert effects.writes_first_argument("numpy.add.at")  # ufunc.at writes in place
    assert not effects.writes_first_argument("numpy.sort")  # returns a sorted copy
    assert effects.is_in_place_method("sort")  # ... but the method sorts in place
    assert effects.is_view_method("reshape") and effects.is_view_method("T")
    assert not effects.is_view_method("astype")
    assert effects.returns_view("numpy.asarray") and effects.returns_view("np.flip")
    assert not effects.returns_view("numpy.array")  # copies by default


# SEQ202's fix is safe only when the write analysis finds no write to the loaded array: the one place where
# these tables decide a fix's applicability, so it is checked here case by case.
_LOADING_CLASS = (
    "import numpy as np\nimport keras\n\nclass Rows(keras.utils.PyDataset):\n"
    "    def __init__(self, path, **kwargs):\n        super().__init__(**kwargs)\n        self.x = np.load(path)\n\n"
    "    def __len__(self):\n        return 1\n\n    def __getitem__(self, i):\n"
)


@pytest.mark.parametrize(
    ("body", "applicability"),
    [
        ("        return self.x[i:i + 2] * 2\n", "safe"),
        ("        b = self.x[i:i + 2].astype('float32')\n        b /= 255\n        return b\n", "safe"),  # a copy
        ("        return np.clip(self.x[i], 0, 1), len(self.x)\n", "safe"),
        ("        b = np.flip(self.x[i:i + 2])\n        b *= 2\n        return b\n", "unsafe"),  # a view
        ("        for k, row in enumerate(self.x[i:i + 2]):\n            row[0] = k\n        return 1\n", "unsafe"),
        ("        self.x.sort()\n        return 1\n", "unsafe"),
        ("        np.add.at(self.x, [0], 1)\n        return 1\n", "unsafe"),
        ("        np.clip(self.x, 0, 1, out=self.x)\n        return 1\n", "unsafe"),
        ("        return self.augment(self.x[i])\n", "unsafe"),  # unknown code might write
        # Helpers of the class are followed: one that only reads, one that writes into its argument.
        ("        return self.spectrum(self.x[i:i + 2])\n\n    def spectrum(self, w):\n"
         "        return np.log1p(np.abs(np.fft.rfft(w.reshape(len(w), -1))))\n", "safe"),
        ("        return self.scale(self.x[i:i + 2])\n\n    def scale(self, w):\n        w /= 255\n        return w\n",
         "unsafe"),
    ],
)
def test_mmap_fix_is_safe_only_without_writes(body: str, applicability: str) -> None:
    from seqlint.engine import get_rule, lint_source

    findings = lint_source(_LOADING_CLASS + body, "rows.py", rules=[get_rule("SEQ202")])
    assert [f.fix.applicability.value for f in findings] == [applicability]
