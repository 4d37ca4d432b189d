"""Shared test setup. Keras is imported only by the fixtures that need it: seqlint's tests check that
seqlint never pulls in TensorFlow, so nothing here may import it at collection time."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _session_seqkit_cache(tmp_path_factory):
    """Caches that code under test writes without naming a folder (the fixed fixtures' preprocess_once
    and pack_samples) go to this session's temporary folder, not the user's ~/.cache/seqkit."""
    if os.environ.get("SEQKIT_CACHE_DIR"):
        yield
        return
    os.environ["SEQKIT_CACHE_DIR"] = str(tmp_path_factory.mktemp("seqkit-cache"))
    try:
        yield
    finally:
        os.environ.pop("SEQKIT_CACHE_DIR", None)


@pytest.fixture
def tiny_model():
    """`tiny_model(input_shapes, outputs=1)`: a compiled model small enough that fit is all data pipeline.

    `input_shapes` is a shape tuple for one input or a dict {name: shape} for a multi-input model.
    """
    import keras

    def build(input_shapes, outputs: int = 1, loss: str = "mse"):
        keras.utils.set_random_seed(0)
        if isinstance(input_shapes, dict):
            inputs = {name: keras.Input(shape, name=name) for name, shape in input_shapes.items()}
            flat = [keras.layers.Flatten()(tensor) for tensor in inputs.values()]
            hidden = keras.layers.Concatenate()(flat) if len(flat) > 1 else flat[0]
        else:
            inputs = keras.Input(input_shapes)
            hidden = keras.layers.Flatten()(inputs)
        output = keras.layers.Dense(outputs)(keras.layers.Dense(4, activation="relu")(hidden))
        model = keras.Model(inputs, output)
        model.compile(optimizer="sgd", loss=loss)
        return model

    return build
