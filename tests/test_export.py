"""Exported losses: Keras (TensorFlow and JAX backends), PyTorch and NumPy
modules that need no deap_lossgp, agree with the compiled Keras loss in value
and gradient, register on import under a name of their own, and are written
by ``deap-lossgp export --format``."""

import ast
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from deap_lossgp.app.cli import main
from deap_lossgp.gp.export import to_numpy_source, to_source, to_torch_source
from deap_lossgp.gp.expression import compile_loss, export_package, probe_batch, to_python_source
from deap_lossgp.gp.losses import REFERENCE_EXPRESSIONS

# Every operator, constants alone under an operator, and a protected division by zero.
EXPRESSIONS = [
    REFERENCE_EXPRESSIONS["ngl"],
    "neg(mul(y_true, log(y_pred)))",
    "add(div(y_true, sqrt(y_pred)), sin(mul(-1.5, y_pred)))",
    "sub(exp(mul(y_pred, 3.0)), log(cos(add(y_true, 0.3))))",
    "mul(sqrt(neg(y_pred)), add(sin(0.5), cos(y_true)))",
    "add(div(y_pred, sub(y_true, y_true)), mul(y_pred, y_pred))",
]
Y_TRUE, Y_PRED = probe_batch(seed=3, batch=8, classes=5)
LABELS = Y_TRUE.argmax(axis=1)

# A fresh interpreter (-I: no PYTHONPATH, no current directory) in which
# neither deap nor deap_lossgp can be imported, as on a machine without them.
WITHOUT_DEAP = """
import importlib.abc, sys
class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("deap", "deap_lossgp"):
            raise ModuleNotFoundError(f"No module named {name!r}")
sys.meta_path.insert(0, NotInstalled())
try:
    import deap_lossgp
except ImportError:
    pass
else:
    sys.exit("deap_lossgp is importable")
sys.path.insert(0, ".")
"""


def run_without_deap(script, cwd, **env):
    result = subprocess.run([sys.executable, "-I", "-c", WITHOUT_DEAP + script], cwd=cwd, capture_output=True,
                            text=True, env={**os.environ, **env}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def load(path, source):
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"export_{path.stem}_{abs(hash(source))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def keras_reference(expression, dtype="float32"):
    """Per-sample values, batch loss and its gradient in y_pred, from the compiled Keras loss (TensorFlow)."""
    import tensorflow as tf

    loss = compile_loss(expression)
    y_true, y_pred = tf.constant(Y_TRUE), tf.constant(Y_PRED)
    with tf.GradientTape() as tape:
        tape.watch(y_pred)
        value = loss(y_true, y_pred)
    return loss.call(y_true, y_pred).numpy(), float(value), tape.gradient(value, y_pred).numpy()


def imported_modules(source):
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_torch_export_matches_keras_in_value_and_gradient(expression, tmp_path):
    import torch

    source = to_torch_source(expression)
    assert imported_modules(source) == {"torch"}
    module = load(tmp_path / "best_loss_torch.py", source)
    per_sample, value, gradient = keras_reference(expression)
    y_pred = torch.tensor(Y_PRED, requires_grad=True)
    loss = module.EvolvedLoss()(y_pred, torch.tensor(Y_TRUE))
    loss.backward()
    np.testing.assert_allclose(loss.item(), value, rtol=1e-5)
    np.testing.assert_allclose(y_pred.grad.numpy(), gradient, rtol=1e-5, atol=1e-7)
    unreduced = module.EvolvedLoss(reduction="none")(y_pred, torch.tensor(LABELS))  # class indices
    np.testing.assert_allclose(unreduced.detach().numpy(), per_sample, rtol=1e-5)
    assert module.EvolvedLoss(reduction="sum")(y_pred, torch.tensor(Y_TRUE)).item() == pytest.approx(
        per_sample.sum(), rel=1e-5)


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_numpy_export_matches_keras_in_value_and_gradient(expression, tmp_path):
    source = to_numpy_source(expression)
    assert imported_modules(source) == {"numpy"}
    module = load(tmp_path / "best_loss_numpy.py", source)
    per_sample, value, gradient = keras_reference(expression)
    values = module.evolved_loss(Y_TRUE, Y_PRED)
    assert values.dtype == np.float32 and values.shape == (len(Y_PRED),)
    np.testing.assert_allclose(values, per_sample, rtol=1e-5)
    np.testing.assert_allclose(module.evolved_loss(LABELS, Y_PRED), per_sample, rtol=1e-5)
    np.testing.assert_allclose(values.mean(), value, rtol=1e-5)
    # Central differences of the exported function, in float64, element by element (each
    # element of the loss depends on its own y_pred only), with steps relative to y_pred.
    y_true, y_pred, numeric = Y_TRUE.astype("float64"), Y_PRED.astype("float64"), np.zeros(Y_PRED.shape)
    for index in np.ndindex(Y_PRED.shape):
        step = 1e-5 * y_pred[index]
        up, down = y_pred.copy(), y_pred.copy()
        up[index] += step
        down[index] -= step
        difference = module.elementwise(y_true, up)[index] - module.elementwise(y_true, down)[index]
        numeric[index] = difference / (2 * step) / Y_PRED.size
    np.testing.assert_allclose(numeric, gradient, rtol=1e-5, atol=1e-7)


def test_export_names_are_checked_and_formats_dispatch():
    expression = "neg(mul(y_true, log(y_pred)))"
    assert to_source(expression) == to_python_source(expression)
    assert to_source(expression, "torch") == to_torch_source(expression)
    assert to_source(expression, "numpy") == to_numpy_source(expression)
    with pytest.raises(ValueError, match="format must be one of keras, torch, numpy"):
        to_source(expression, "onnx")
    with pytest.raises(ValueError, match="class_name must be a Python identifier"):
        to_torch_source(expression, class_name="not valid")
    with pytest.raises(ValueError, match="function_name must be a Python identifier"):
        to_numpy_source(expression, function_name="1st")


def test_each_expression_registers_its_own_keras_name():
    ce, ngl = "neg(mul(y_true, log(y_pred)))", REFERENCE_EXPRESSIONS["ngl"]
    assert export_package(ce) != export_package(ngl)
    assert export_package(ce) == export_package("-(y_true*log(y_pred))")  # same tree, same name
    assert f"PACKAGE = {export_package(ce)!r}" in to_python_source(ce)


@pytest.mark.parametrize("fmt, check", [
    ("keras", "\nEvolvedLoss = _build_loss_class()\n"), ("py", "\nEvolvedLoss = _build_loss_class()\n"),
    ("torch", "\nclass EvolvedLoss(torch.nn.Module):\n"), ("numpy", "\ndef evolved_loss(y_true, y_pred):\n"),
])
def test_cli_export_writes_each_format(fmt, check, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "best.json").write_text(json.dumps({"expression": REFERENCE_EXPRESSIONS["ngl"]}))
    assert main(["export", str(run), "--format", fmt, "--output", str(tmp_path / "loss.py")]) == 0
    text = (tmp_path / "loss.py").read_text()
    assert check in text
    assert main(["export", str(run), "--format", fmt]) == 0
    assert capsys.readouterr().out.endswith(text)


SAVE = """
import keras, numpy as np
import best_loss_ce, best_loss_ngl
x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
y = keras.utils.to_categorical(np.arange(32) % 3, 3)
for name, module in (("ce", best_loss_ce), ("ngl", best_loss_ngl)):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss=module.EvolvedLoss())
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    model.save(name + ".keras")
"""

LOAD = """
import keras
import best_loss_ce
first = keras.models.load_model("ce.keras")
assert type(first.loss) is best_loss_ce.EvolvedLoss, type(first.loss)
import best_loss_ngl
for name, module in (("ce", best_loss_ce), ("ngl", best_loss_ngl)):
    loss = keras.models.load_model(name + ".keras").loss
    assert type(loss) is module.EvolvedLoss, (name, type(loss).__module__)
    print(name, loss.expression)
"""


@pytest.mark.slow
def test_a_plain_import_lets_load_model_find_the_class_of_each_export(tmp_path):
    expressions = {"ce": "neg(mul(y_true, log(y_pred)))", "ngl": REFERENCE_EXPRESSIONS["ngl"]}
    for name, expression in expressions.items():
        (tmp_path / f"best_loss_{name}.py").write_text(to_python_source(expression))
    run_without_deap(SAVE, tmp_path)
    printed = run_without_deap(LOAD, tmp_path).splitlines()
    assert printed == [f"{name} {expression}" for name, expression in expressions.items()]


JAX = """
import json, jax, keras, numpy as np
assert keras.backend.backend() == "jax"
import best_loss
y_true, y_pred = (np.array(a, "float32") for a in json.loads(sys.stdin.read()))
loss = best_loss.EvolvedLoss()
value, gradient = jax.value_and_grad(lambda p: loss(y_true, p))(y_pred)
again = keras.losses.deserialize(keras.losses.serialize(loss))
keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((y_pred.shape[1],)), keras.layers.Dense(y_pred.shape[1], activation="softmax")])
model.compile(optimizer="adam", loss=loss)
history = model.fit(y_pred, y_true, epochs=2, batch_size=4, verbose=0).history["loss"]
print(json.dumps({"value": float(value), "gradient": np.asarray(gradient).tolist(),
                  "per_sample": np.asarray(loss.call(y_true, y_pred)).tolist(),
                  "again": float(again(y_true, y_pred)), "history": history}))
"""


@pytest.mark.slow
def test_keras_export_runs_under_the_jax_backend(tmp_path):
    expression = REFERENCE_EXPRESSIONS["ngl"]
    (tmp_path / "best_loss.py").write_text(to_python_source(expression))
    result = subprocess.run([sys.executable, "-I", "-c", WITHOUT_DEAP + JAX], cwd=tmp_path, capture_output=True,
                            text=True, env={**os.environ, "KERAS_BACKEND": "jax"}, timeout=300,
                            input=json.dumps([Y_TRUE.tolist(), Y_PRED.tolist()]))
    assert result.returncode == 0, result.stderr[-3000:]
    jax = json.loads(result.stdout.splitlines()[-1])
    per_sample, value, gradient = keras_reference(expression)
    np.testing.assert_allclose(jax["value"], value, rtol=1e-5)
    np.testing.assert_allclose(jax["again"], value, rtol=1e-5)
    np.testing.assert_allclose(jax["per_sample"], per_sample, rtol=1e-5)
    np.testing.assert_allclose(jax["gradient"], gradient, rtol=1e-5, atol=1e-7)
    assert all(np.isfinite(jax["history"]))


@pytest.mark.parametrize("writer, argument", [(to_python_source, "class_name"), (to_torch_source, "class_name"),
                                              (to_numpy_source, "function_name")])
@pytest.mark.parametrize("name, problem", [
    ("class", "is a Python keyword"), ("None", "is a Python keyword"), ("list", "hide Python's built-in list"),
    ("int", "hide Python's built-in int"), ("__init__", "special Python name"),
    ("EXPRESSION", "defines or imports itself"), ("TINY", "defines or imports itself"),
])
def test_export_names_that_would_break_the_module_are_refused(writer, argument, name, problem):
    with pytest.raises(ValueError, match=f"^{argument} '{name}' .*{problem}.*; choose another name$"):
        writer("neg(mul(y_true, log(y_pred)))", **{argument: name})


@pytest.mark.parametrize("writer, argument, name", [
    (to_numpy_source, "function_name", "np"), (to_numpy_source, "function_name", "elementwise"),
    (to_torch_source, "class_name", "torch"), (to_python_source, "class_name", "parse"),
])
def test_export_names_the_module_itself_uses_are_refused(writer, argument, name):
    with pytest.raises(ValueError, match="defines or imports itself"):
        writer("neg(mul(y_true, log(y_pred)))", **{argument: name})


def test_a_name_that_passes_the_check_gives_a_working_module(tmp_path):
    # "match" is a soft keyword: a valid name.
    module = load(tmp_path / "renamed.py", to_numpy_source("neg(mul(y_true, log(y_pred)))", function_name="match"))
    np.testing.assert_allclose(module.match(Y_TRUE, Y_PRED), -(Y_TRUE * np.log(Y_PRED)).mean(axis=1), rtol=1e-6)
    torch_module = load(tmp_path / "renamed_torch.py", to_torch_source("neg(y_pred)", class_name="CustomLoss"))
    assert torch_module.__all__ == ["EXPRESSION", "elementwise", "CustomLoss"]


def test_loss_scale_compares_gradients_with_cross_entropys():
    from deap_lossgp.gp.export import loss_scale

    ce = "neg(mul(y_true, log(y_pred)))"
    assert loss_scale(ce) == pytest.approx(0.1)  # the tree averages over the 10 classes where CE sums
    assert loss_scale(f"mul(1000.0, {ce})") == pytest.approx(100.0)
    assert loss_scale(f"add(1000.0, {ce})") == pytest.approx(0.1)  # a constant changes no step
    with pytest.raises(ValueError, match="gradient at the reference prediction is zero"):
        loss_scale("add(y_pred, y_true)")  # sums to a constant over classes: flat in the logits


def train_with_sgd(module, steps=50):
    """Losses of a linear classifier on separable data, trained by plain SGD (lr 0.05) with an exported loss."""
    import torch

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(256, 8, generator=generator)
    labels = (x @ torch.randn(8, 4, generator=generator)).argmax(dim=1)
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 4)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    criterion, losses = module.EvolvedLoss(), []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = criterion(torch.softmax(model(x), dim=-1), labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return np.array(losses), (model(x).argmax(dim=1) == labels).float().mean().item()


@pytest.mark.parametrize("expression", [
    "mul(1000000.0, neg(mul(y_true, log(y_pred))))",   # scale 100,000: SGD's steps overshoot
    "mul(100000.0, exp(sub(y_pred, y_true)))",          # scale 768
    "mul(0.001, neg(mul(y_true, log(y_pred))))",         # scale 0.0001: SGD barely moves
])
def test_the_rescaled_torch_export_trains_with_plain_sgd(expression, tmp_path):
    pytest.importorskip("torch")
    rescaled = load(tmp_path / "rescaled.py", to_source(expression, "torch", rescale=True))
    losses, accuracy = train_with_sgd(rescaled)
    assert np.all(np.isfinite(losses)) and np.all(np.diff(losses) <= 0) and losses[-1] < losses[0]
    assert accuracy > 0.85
    raw_losses, raw_accuracy = train_with_sgd(load(tmp_path / "raw.py", to_source(expression, "torch")))
    assert np.any(np.diff(raw_losses) > 0) or raw_accuracy < 0.5  # the same loss unscaled does not


def test_rescaled_exports_say_so_and_agree_across_formats(tmp_path):
    from deap_lossgp.gp.export import loss_scale

    expression = "mul(100000.0, exp(sub(y_pred, y_true)))"
    factor = 1 / loss_scale(expression)
    numpy_module = load(tmp_path / "rescaled_numpy.py", to_source(expression, "numpy", rescale=True))
    np.testing.assert_allclose(numpy_module.evolved_loss(Y_TRUE, Y_PRED),
                               factor * load(tmp_path / "raw_numpy.py", to_source(expression, "numpy"))
                               .evolved_loss(Y_TRUE, Y_PRED), rtol=1e-6)
    keras_source = to_source(expression, "keras", rescale=True)
    assert f"Rescaled by {factor:.6g}" in keras_source and numpy_module.EXPRESSION.startswith("mul(")
    assert f"EXPRESSION = {numpy_module.EXPRESSION!r}" in keras_source
    with pytest.raises(ValueError, match="export it without rescale"):
        to_source("add(y_pred, 1.0)", "torch", rescale=True)


def test_exported_formulas_mark_the_protected_operators():
    source = to_torch_source("neg(mul(y_true, log(y_pred)))")
    assert "Formula: -y_true*plog(y_pred)\n" in source
    assert "    plog(a) = log(max(|a|, TINY))\n" in source and "\ndef plog(a):\n" in source
