"""Export one loss for Keras, PyTorch and NumPy, and check that the three agree."""

import pathlib
import sys
import tempfile

import numpy
import torch

from deap_lossgp.gp.export import to_source
from deap_lossgp.gp.expression import probe_batch

# DEAP's prefix text, or a formula as the tool prints it.
expression = "-y_true*log(y_pred) + 0.1*y_pred**2"
y_true, y_pred = probe_batch(batch=4, classes=3)

with tempfile.TemporaryDirectory() as folder:
    # The files `deap-lossgp export RUN --format keras|torch|numpy --output FILE` writes.
    for fmt in ("keras", "torch", "numpy"):
        (pathlib.Path(folder) / f"loss_{fmt}.py").write_text(to_source(expression, fmt))
    sys.path.insert(0, folder)
    import loss_keras  # importing it registers the class, so keras.models.load_model finds it
    import loss_numpy
    import loss_torch

    keras_loss = loss_keras.EvolvedLoss()
    keras_value = float(keras_loss(y_true, y_pred))

    prediction = torch.tensor(y_pred, requires_grad=True)
    labels = torch.tensor(y_true.argmax(axis=1))  # class indices work as well as one-hot labels
    torch_value = loss_torch.EvolvedLoss()(prediction, labels)
    torch_value.backward()  # the gradient reaches the predictions

    numpy_value = loss_numpy.evolved_loss(y_true, y_pred).mean()

print(f"expression: {loss_keras.EXPRESSION}")
print(f"Keras {keras_value:.6f} (registered as {type(keras_loss).__module__}: "
      f"{loss_keras.PACKAGE}>{loss_keras.CLASS_NAME})")
print(f"PyTorch {torch_value.item():.6f}, gradient of the first prediction {prediction.grad[0].tolist()}")
print(f"NumPy {numpy_value:.6f}")
assert numpy.allclose([torch_value.item(), numpy_value], keras_value, rtol=1e-5)
