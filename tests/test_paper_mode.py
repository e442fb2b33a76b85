"""Paper mode: the thesis's rules as written, NGL's input pipeline, and GPU readiness."""

import os
import pathlib
import random
import subprocess
import sys

import numpy as np
import pytest
from deap import gp

from deap_lossgp.fitness import LossEvaluator, WORST_FITNESS
from deap_lossgp.fitness.devices import claim_slot, gpu_environment, list_gpus
from deap_lossgp.fitness.models import build_model, register_model, MODELS
from deap_lossgp.fitness.scoring import score
from deap_lossgp.gp.expression import compile_loss
from deap_lossgp.gp.operators import expected_grow_size, genGrowHeight, mutOnePoint, mutOperatorPoint
from deap_lossgp.gp.primitives import INIT_OPERATORS, make_pset
from deap_lossgp.gp.validity import check_validity
from deap_lossgp.gp.standalone import MAX_DEPTH, parse
from deap_lossgp.search.presets import MODES, PRESETS, SAFETY_MAX_HEIGHT, SAFETY_MAX_SIZE, get_preset
from deap_lossgp.search.toolbox import make_toolbox

ROOT = pathlib.Path(__file__).resolve().parents[1]
NEGATIVE = "neg(mul(y_true, y_pred))"  # -p_true: learns, and its loss value is negative


# --- modes -------------------------------------------------------------------------------------------


def test_paper_presets_default_to_the_thesis_mode_and_one_flag_switches():
    for name in ("paper-small", "paper-large"):
        preset = get_preset(name)
        assert preset.mode == "thesis"
        assert (preset.fitness.validity, preset.fitness.metric, preset.fitness.averaging,
                preset.fitness.chance_after) == ("thesis", "loss", "thesis", 0)
        search = preset.search
        assert (search.init_method, search.init_min_height, search.init_max_height, search.point_mutation,
                search.max_height, search.max_size) == ("grow_height", 2, 100, "operator", SAFETY_MAX_HEIGHT,
                                                        SAFETY_MAX_SIZE)
        ours = get_preset(name, mode="ours")
        assert ours.mode == "ours"
        for section, fields in MODES["ours"].items():
            assert {k: getattr(getattr(ours, section), k) for k in fields} == fields
        # Everything else stays the preset's, and a field given with the mode wins.
        assert ours.fitness.tasks == preset.fitness.tasks and ours.fitness.epochs == preset.fitness.epochs
        assert get_preset(name, mode="ours", metric="loss").fitness.metric == "loss"
    # `ours` is exactly what quick has always been (the reference evolve pins its results).
    quick = get_preset("quick", mode="ours")
    assert quick.fitness == PRESETS["quick"].fitness and quick.search == PRESETS["quick"].search
    thesis_quick = get_preset("quick", mode="thesis")
    assert thesis_quick.fitness.validity == "thesis" and thesis_quick.fitness.model == "small_cnn"
    with pytest.raises(ValueError, match="unknown mode 'paper'.*thesis, ours"):
        get_preset("quick", mode="paper")


def _balanced(operator, constant, leaves):
    # A balanced binary tree over `leaves` copies of one constant, in prefix order.
    if leaves == 1:
        return [gp.Terminal(constant, False, object)]
    return [operator] + _balanced(operator, constant, leaves // 2) + _balanced(operator, constant, leaves - leaves // 2)


def test_thesis_mode_toolbox_grows_heights_beyond_6_up_to_100_and_has_only_the_safety_cap():
    search = get_preset("paper-small").search
    toolbox = make_toolbox(search=search, fitness=LossEvaluator(get_preset("paper-small").fitness))
    random.seed(3)
    heights = [gp.PrimitiveTree(toolbox.expr()).height for _ in range(60)]
    assert min(heights) >= 2 and max(heights) <= 100 and max(heights) > 50
    population = toolbox.population(n=4)
    assert all(check_validity(ind, "thesis")[0] for ind in population)
    assert max(ind.height for ind in population) > 6
    # The only limit is the safety cap: a child above it is restored to its parent.
    small = make_toolbox(search=search.replace(max_size=5), fitness=toolbox.evaluate)
    parent = gp.PrimitiveTree.from_string("add(y_true, y_pred)", small.pset)
    child = type(parent)(parent)
    random.seed(0)
    for _ in range(20):
        (child,) = small.mutate_point(child)
        assert len(child) <= 5
    # Trees within the cap can always be read back from their text, even with the longest constants.
    assert SAFETY_MAX_HEIGHT < MAX_DEPTH
    widest = gp.PrimitiveTree(_balanced(small.pset.mapping["add"], -0.12345678901234567, SAFETY_MAX_SIZE // 2))
    assert len(widest) == SAFETY_MAX_SIZE - 1 and len(parse(str(widest))) == len(widest)
    # Our mode keeps DEAP's half-and-half at 2..6.
    ours = make_toolbox(search=get_preset("quick").search, fitness=toolbox.evaluate)
    assert max(gp.PrimitiveTree(ours.expr()).height for _ in range(60)) <= 6


def test_grow_height_reaches_the_drawn_height_with_the_stated_expected_size():
    pset = make_pset(INIT_OPERATORS)
    random.seed(1)
    for height in (2, 20, 100):
        trees = [gp.PrimitiveTree(genGrowHeight(pset, height, height)) for _ in range(400 if height < 100 else 40)]
        assert {tree.height for tree in trees} == {height}
    # The thesis's operators with DEAP's terminal ratio: 1 + h + h(h + 1)/6 nodes on average.
    assert pset.terminalRatio == 0.25
    for height in (2, 20, 100):
        assert expected_grow_size(pset, height) == pytest.approx(1 + height + height * (height + 1) / 6)
    assert expected_grow_size(pset, 2, 100) == pytest.approx(630.1, abs=0.1)
    random.seed(2)
    sizes = [len(genGrowHeight(pset, 20, 20)) for _ in range(3000)]
    assert np.mean(sizes) == pytest.approx(expected_grow_size(pset, 20), rel=0.05)
    with pytest.raises(ValueError, match="min_ <= max_"):
        genGrowHeight(pset, 5, 3)


def test_thesis_one_point_mutation_turns_leaves_into_operators_and_never_touches_the_root():
    pset = make_pset()
    random.seed(0)
    grew = shrank = 0
    for _ in range(300):
        tree = gp.PrimitiveTree.from_string("add(sin(y_true), mul(y_pred, 0.5))", pset)
        (tree,) = mutOperatorPoint(tree, pset)
        assert tree[0].name == "add"
        assert all(isinstance(node, gp.Primitive) or node.arity == 0 for node in tree)
        grew += len(tree) > 6
        shrank += len(tree) < 6
    assert grew and shrank  # leaves became operators over fresh leaves; binary ops became unary ones
    leaf = gp.PrimitiveTree.from_string("neg(y_pred)", pset)
    (leaf,) = mutOperatorPoint(leaf, pset)
    assert leaf[0].name == "neg" and isinstance(leaf[1], gp.Primitive)
    assert len(leaf) == 2 + leaf[1].arity
    single = gp.PrimitiveTree.from_string("y_pred", pset)
    assert mutOperatorPoint(single, pset)[0] is single and len(single) == 1
    # Our variant never changes the shape: a leaf stays a leaf.
    random.seed(0)
    for _ in range(50):
        tree = gp.PrimitiveTree.from_string("add(y_true, y_pred)", pset)
        assert len(mutOnePoint(tree, pset)[0]) == 3


# --- the sign of a loss --------------------------------------------------------------------------------


def test_thesis_validity_rejects_negative_losses():
    assert not check_validity(NEGATIVE, "thesis")[0]
    assert "outside" in check_validity(NEGATIVE, "thesis")[1]
    assert check_validity(NEGATIVE, "screened")[0]


def test_no_negative_loss_wins_by_its_sign():
    baseline = {"val_loss": 0.5, "val_accuracy": 0.8, "val_ce": 0.5}
    negative = {"val_loss": -0.3, "val_accuracy": 0.4, "val_ce": 1.5}
    worse = {"val_loss": 0.9, "val_accuracy": 0.7, "val_ce": 0.7}
    for metric in ("loss", "weighted"):
        assert score([negative] * 3, [baseline] * 3, metric)[0] == WORST_FITNESS
        assert score([worse] * 3, [baseline] * 3, metric)[0] > WORST_FITNESS
    # One negative task spoils the candidate even if others win.
    assert score([negative, worse, {**worse, "val_loss": 0.1}], [baseline] * 3, "loss")[0] == WORST_FITNESS
    # Accuracy does not look at the loss value at all.
    assert score([negative] * 3, [baseline] * 3, "accuracy")[0] == (0.0, pytest.approx(-0.5))


def test_a_trained_negative_loss_is_not_credited_under_the_loss_metric(tmp_path):
    fitness = LossEvaluator("quick", baseline_dir=tmp_path, tasks=["digits"], epochs=1, max_train_samples=200,
                          metric="loss")
    record = fitness.evaluate_detailed(NEGATIVE)
    assert record["tasks"]["digits"]["val_loss"] < 0
    assert record["status"] == "invalid" and tuple(record["fitness"]) == WORST_FITNESS
    assert "not positive" in record["reason"]
    assert tuple(fitness.evaluate_detailed("neg(mul(y_true, log(y_pred)))")["fitness"]) > WORST_FITNESS


# --- NGL's pipeline and mixed precision ---------------------------------------------------------------------


def test_paper_model_sees_256_pixels_after_preprocessing_and_augmentation():
    import keras

    config = get_preset("paper-small").fitness
    assert (config.upsample, config.augment) == (8, True)
    keras.utils.set_random_seed(0)
    model = build_model("inception_v3", (32, 32, 3), 10, upsample=config.upsample, augment=config.augment)
    kinds = [layer.__class__.__name__ for layer in model.layers]
    assert kinds[:5] == ["InputLayer", "RandomZoom", "RandomTranslation", "RandomFlip", "UpSampling2D"]
    zoom, shift, flip = model.layers[1:4]
    assert (zoom.height_factor, zoom.width_factor, zoom.fill_mode) == (0.2, 0.2, "nearest")
    assert (shift.height_factor, shift.width_factor) == (0.1, 0.1) and flip.mode == "horizontal"
    classifier = model.layers[-1]
    assert tuple(classifier.input_shape[1:]) == (256, 256, 3)
    inner = [layer.__class__.__name__ for layer in classifier.layers]
    assert inner[1] == "Rescaling" and "UpSampling2D" not in inner  # 256 needs no further upsampling
    assert tuple(classifier.get_layer("inception_v3").input_shape[1:]) == (256, 256, 3)
    assert model.output_shape == (None, 10)
    # Fashion-MNIST: 28 x 8 = 224, its channel repeated three times.
    gray = build_model("inception_v3", (28, 28, 1), 10, upsample=8)
    assert tuple(gray.layers[-1].get_layer("inception_v3").input_shape[1:]) == (224, 224, 3)
    # Preprocessing: [0, 1] pixels become [-1, 1] like preprocess_input's.
    rescale = classifier.get_layer("preprocess_input")
    pixels = np.array([[0.0, 0.5, 1.0]], dtype="float32")
    expected = keras.applications.inception_v3.preprocess_input(pixels * 255.0)
    np.testing.assert_allclose(rescale(pixels).numpy(), expected, atol=1e-6)


def _few_filters(input_shape, num_classes):
    import keras
    from keras import layers

    inputs = keras.Input(shape=input_shape)
    x = layers.Conv2D(4, 3, strides=4, activation="relu")(inputs)
    x = layers.GlobalMaxPooling2D()(x)
    return keras.Model(inputs, layers.Dense(num_classes, activation="softmax")(x))


@pytest.fixture
def few_filters():
    register_model("test_few_filters", _few_filters)
    yield "test_few_filters"
    del MODELS["test_few_filters"]


def test_pipeline_trains_reproducibly_and_augments_only_in_training(few_filters):
    import keras

    from deap_lossgp.fitness.datasets import load_task
    from deap_lossgp.fitness.training import train_model

    data = load_task("digits")
    settings = {"model": few_filters, "epochs": 2, "batch_size": 64, "upsample": 8, "augment": True,
                "chance_after": 0}
    first = train_model("categorical_crossentropy", data, **settings)
    again = train_model("categorical_crossentropy", data, **settings)
    plain = train_model("categorical_crossentropy", data, **{**settings, "augment": False})
    assert first["stop_reason"] == "completed"
    assert first["history"] == again["history"]  # seeded augmentation
    assert first["history"]["loss"] != plain["history"]["loss"]
    model = build_model(few_filters, (8, 8, 1), 10, upsample=8, augment=True)
    x = data.x_val[:8].astype("float32") / data.pixel_max
    np.testing.assert_array_equal(model(x, training=False).numpy(), model(x, training=False).numpy())
    assert model.layers[-1].input_shape == (None, 64, 64, 1)
    assert keras.config.dtype_policy().name == "float32"


def test_mixed_precision_keeps_an_exp_loss_finite(few_filters):
    import keras

    from deap_lossgp.fitness.datasets import load_task
    from deap_lossgp.fitness.training import train_model

    # exp(12 + p) >= 1.6e5, beyond float16's largest value (65504): computed in float16 it is inf.
    with np.errstate(over="ignore"):
        assert not np.isfinite(np.exp(np.float16(12.1)))
    loss = compile_loss("exp(add(12.0, y_pred))")
    y16 = np.full((2, 10), 0.1, dtype="float16")
    value = loss(y16, y16)  # an evolved loss computes in float32, whatever its inputs
    assert value.dtype == "float32" and float(value) == pytest.approx(np.exp(12.1), rel=1e-3)
    data = load_task("digits")
    record = train_model(loss, data, model=few_filters, epochs=1, batch_size=64, precision="mixed_float16",
                         chance_after=0, divergence_factor=1e30)
    assert record["stop_reason"] == "completed"
    assert all(np.isfinite(record["history"]["loss"]))
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = build_model(few_filters, (8, 8, 1), 10, upsample=2)
    finally:
        keras.config.set_dtype_policy("float32")
    # The builder's own layers compute in float16; a float32 layer ends the model.
    assert model.layers[-2].compute_dtype == "float16" and model.layers[-2].outputs[0].dtype == "float16"
    assert model.outputs[0].dtype == "float32"
    with pytest.raises(ValueError, match="precision"):
        get_preset("quick", precision="float8")
    with pytest.raises(ValueError, match="upsample"):
        get_preset("quick", upsample=0)
    with pytest.raises(ValueError, match="augment"):
        get_preset("quick", augment="yes")


# --- GPUs ------------------------------------------------------------------------------------------


def test_each_worker_slot_maps_to_its_own_gpu():
    assert gpu_environment(0, ["0", "1"]) == {"CUDA_VISIBLE_DEVICES": "0", "TF_FORCE_GPU_ALLOW_GROWTH": "true"}
    assert gpu_environment(1, ["0", "1"])["CUDA_VISIBLE_DEVICES"] == "1"
    assert gpu_environment(2, ["0", "1"])["CUDA_VISIBLE_DEVICES"] == "0"  # more workers than GPUs: in turn
    assert gpu_environment(1, ["4", "6"])["CUDA_VISIBLE_DEVICES"] == "6"
    assert gpu_environment(0, []) == {}
    assert list_gpus({"CUDA_VISIBLE_DEVICES": "2, 3"}) == ["2", "3"]
    assert list_gpus({"CUDA_VISIBLE_DEVICES": "-1"}) == [] and list_gpus({"CUDA_VISIBLE_DEVICES": ""}) == []


def test_workers_claim_distinct_slots_and_pin_before_tensorflow_starts(tmp_path):
    from deap_lossgp.fitness import devices

    held = dict(devices._held)
    try:
        assert claim_slot(3, tmp_path) == 0
        assert claim_slot(3, tmp_path) == 1
        # A worker started now gets the next free GPU, set before TensorFlow is imported.
        script = ("import os, sys; from deap_lossgp.fitness.devices import pin_gpu; "
                  f"print(pin_gpu({str(tmp_path)!r}), os.environ['CUDA_VISIBLE_DEVICES'], "
                  "os.environ['TF_FORCE_GPU_ALLOW_GROWTH'], 'tensorflow' in sys.modules)")
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": "4,5,7"}
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
        assert out.stdout.split() == ["7", "7", "true", "False"]
        # A process already running TensorFlow computes on the first GPU: it takes slot 0 if free.
        assert claim_slot(3, tmp_path, only=0) is None
        fresh = tmp_path / "fresh"
        fresh.mkdir()
        assert claim_slot(3, fresh, only=0) == 0
    finally:
        for path in set(devices._held) - set(held):
            os.close(devices._held.pop(path))


@pytest.mark.slow
def test_gpu_benchmark_says_it_needs_a_gpu_and_runs_a_tiny_pass():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "-1"}
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_evaluation.py")], env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "needs a GPU" in out.stdout
    assert out.stdout.count("trained: ok") == 4  # float32 / mixed_float16, XLA off / on
