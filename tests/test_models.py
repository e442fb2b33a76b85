"""Model builders and their registry."""

import numpy as np
import pytest

from deap_lossgp.fitness.models import MODELS, build_model, get_model_builder, inception_v3, register_model, small_cnn


def test_small_cnn_outputs_probabilities():
    import keras

    keras.utils.set_random_seed(0)
    for shape in [(8, 8, 1), (32, 32, 3)]:
        model = build_model("small_cnn", shape, 7)
        x = np.random.default_rng(0).random((5, *shape)).astype("float32")
        probabilities = model.predict(x, verbose=0)
        assert probabilities.shape == (5, 7)
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_inception_v3_follows_the_paper_setup_and_trains_one_step():
    import keras

    keras.utils.set_random_seed(0)
    model = build_model("inception_v3", (25, 25, 1), 7)
    kinds = [layer.__class__.__name__ for layer in model.layers]
    assert kinds == [
        "InputLayer",
        "Concatenate",  # grayscale -> 3 channels
        "Rescaling",  # preprocess_input: [0, 1] -> [-1, 1]
        "UpSampling2D",
        "Functional",  # InceptionV3 base
        "Flatten",
        "BatchNormalization",
        "Dense",
        "Dropout",
        "BatchNormalization",
        "Dense",
        "Dropout",
        "BatchNormalization",
        "Dense",
    ]
    assert (model.layers[2].scale, model.layers[2].offset) == (2.0, -1.0)
    base = model.layers[4]
    assert base.name == "inception_v3"
    assert tuple(base.input_shape[1:]) == (75, 75, 3)  # 25 * 3 reaches the minimum of 75
    assert base.output_shape == (None, 2048)  # include_top=False, pooling='max'
    assert [model.layers[i].units for i in (7, 10, 13)] == [128, 64, 7]
    assert [model.layers[i].rate for i in (8, 11)] == [0.5, 0.5]
    assert model.layers[-1].activation.__name__ == "softmax"
    # One real training step (eagerly: tracing InceptionV3's graph costs a minute on a CPU).
    model.compile(optimizer="adam", loss="categorical_crossentropy", run_eagerly=True)
    x = np.random.default_rng(0).random((4, 25, 25, 1)).astype("float32")
    y = np.eye(7, dtype="float32")[[0, 1, 2, 3]]
    before = model.layers[-1].kernel.numpy().copy()
    loss = model.train_on_batch(x, y)
    assert np.isfinite(loss)
    assert not np.array_equal(model.layers[-1].kernel.numpy(), before)


def test_inception_v3_upsamples_cifar_sized_images():
    model = inception_v3((32, 32, 3), 10)
    assert "concatenate" not in [layer.name for layer in model.layers]
    assert tuple(model.layers[3].input_shape[1:]) == (96, 96, 3)
    with pytest.raises(ValueError, match="1 or 3 channels"):
        inception_v3((32, 32, 2), 10)


def test_registry_and_import_paths():
    assert get_model_builder("small_cnn") is small_cnn
    assert get_model_builder("deap_lossgp.fitness.models:small_cnn") is small_cnn

    def mine(input_shape, num_classes):
        return small_cnn(input_shape, num_classes)

    register_model("test_registry_model", mine)
    try:
        assert get_model_builder("test_registry_model") is mine
        with pytest.raises(ValueError, match="already registered"):
            register_model("test_registry_model", small_cnn)
    finally:
        del MODELS["test_registry_model"]
    with pytest.raises(ValueError, match="unknown model 'resnet'"):
        get_model_builder("resnet")
    with pytest.raises(ValueError, match="cannot import"):
        get_model_builder("no_such_module_xyz:build")
    with pytest.raises(ValueError, match="callable"):
        register_model("broken", "not a function")
