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
        "A.RandomCrop",
        "imgaug.augmenters.Fliplr",
        "torchvision.transforms.RandomResizedCrop",
        "torchvision.transforms.ColorJitter",
        "skimage.util.random_noise",
        "sklearn.utils.shuffle",
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
        "tensorflow.random.stateless_uniform",
        "tensorflow.random.Generator",
        "albumentations.Compose",
        "albumentations.Normalize",
        "numpy.clip",
        "cv2.flip",
        "randomize",  # a user function whose name merely starts like the module
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
