import numpy as np
import pytest

from deap_lossgp import REFERENCE_EXPRESSIONS, REFERENCE_LOSSES, compile_loss, make_pset, ngl_loss, reference_tree

Y_TRUE = np.array([[0, 1, 0], [1, 0, 0]], np.float32)
Y_PRED = np.array([[0.2, 0.7, 0.1], [0.5, 0.3, 0.2]], np.float32)


def test_ngl_reference_values():
    assert float(np.mean(ngl_loss(Y_TRUE, Y_PRED))) == pytest.approx(6.633026, abs=1e-5)
    assert float(np.mean(ngl_loss(Y_TRUE, Y_PRED, sigmoid=True))) == pytest.approx(4.643955, abs=1e-5)
    for p, y, expected in [(0.0, 0.0, 10.584755), (1.0, 1.0, 0.719540), (1.0, 0.0, 3.306607)]:
        value = ngl_loss(np.array([[y]], np.float32), np.array([[p]], np.float32))
        assert float(value[0]) == pytest.approx(expected, abs=1e-5)


def test_ngl_tree_and_keras_loss_agree_on_reference_batch():
    tree = reference_tree("ngl", make_pset())
    assert float(compile_loss(tree)(Y_TRUE, Y_PRED)) == pytest.approx(6.633026, abs=1e-5)


@pytest.mark.parametrize("name", ["ce", "focal", "sce", "baikal"])
def test_trees_equal_keras_losses_divided_by_classes(name):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(32, 5))
    y_pred = (np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).astype("float32")
    y_true = np.eye(5, dtype="float32")[rng.integers(5, size=32)]
    keras_value = float(np.mean(REFERENCE_LOSSES[name](y_true, y_pred)))
    tree_value = float(compile_loss(REFERENCE_EXPRESSIONS[name])(y_true, y_pred))
    assert tree_value * 5 == pytest.approx(keras_value, rel=1e-4)


def test_cross_entropy_matches_keras():
    import keras

    ours = np.asarray(REFERENCE_LOSSES["ce"](Y_TRUE, Y_PRED))
    theirs = np.asarray(keras.losses.categorical_crossentropy(Y_TRUE, Y_PRED))
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)


def test_every_reference_loss_trains_a_tiny_model():
    import keras

    rng = np.random.default_rng(1)
    x = rng.normal(size=(48, 4)).astype("float32")
    y = np.eye(3, dtype="float32")[(x[:, 0] > 0).astype(int) + (x[:, 1] > 0)]
    for name, loss in REFERENCE_LOSSES.items():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
        model.compile(optimizer=keras.optimizers.Adam(0.05), loss=loss)
        history = model.fit(x, y, epochs=3, batch_size=16, verbose=0).history["loss"]
        assert np.all(np.isfinite(history)), name
        assert history[-1] < history[0], name


def test_unknown_reference_is_a_clear_error():
    with pytest.raises(ValueError, match="choose from"):
        reference_tree("mse", make_pset())
