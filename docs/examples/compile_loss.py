"""Train a Keras model with a loss given as an expression."""

import keras
import numpy
from sklearn.datasets import load_digits

from deap_lossgp import compile_loss, ngl_loss
from deap_lossgp.gp.losses import REFERENCE_EXPRESSIONS

keras.utils.set_random_seed(0)
digits = load_digits()
x = digits.images[..., None].astype("float32") / 16.0
y = keras.utils.to_categorical(digits.target, 10)


def make_model():
    return keras.Sequential([
        keras.Input(shape=(8, 8, 1)),
        keras.layers.Flatten(),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),  # evolved losses read probabilities
    ])


# Any expression text (or DEAP tree) becomes a Keras loss.
loss = compile_loss(REFERENCE_EXPRESSIONS["ngl"], name="ngl_tree")
model = make_model()
model.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
history = model.fit(x[:1400], y[:1400], epochs=3, batch_size=64, verbose=0)
_, accuracy = model.evaluate(x[1400:], y[1400:], verbose=0)
print(f"expression loss: final training loss {history.history['loss'][-1]:.4f}, test accuracy {accuracy:.3f}")

# The loss is serialisable: its config holds the expression.
config = keras.losses.serialize(loss)
assert keras.losses.deserialize(config).expression == REFERENCE_EXPRESSIONS["ngl"]

# The tree and the hand-written Keras function are the same loss.
probe_true, probe_pred = y[:5], model.predict(x[:5], verbose=0)
from_tree = float(loss(probe_true, probe_pred))
by_hand = float(keras.ops.mean(ngl_loss(probe_true, probe_pred)))
print(f"NGL as a tree: {from_tree:.6f}, NGL by hand: {by_hand:.6f}")
assert numpy.isclose(from_tree, by_hand, rtol=1e-5)
