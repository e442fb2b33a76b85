"""Named presets, overrides, validation and JSON round-trips."""

import json

import pytest

from deap_lossgp.fitness import TaskSpec
from deap_lossgp.fitness import FitnessConfig
from deap_lossgp.search.presets import PRESETS, Preset, SearchConfig, get_preset


def test_preset_names_and_thesis_settings():
    assert list(PRESETS) == ["quick", "paper-small", "paper-large"]
    for name, epochs, generations in [("paper-small", 6, 4), ("paper-large", 10, 12)]:
        preset = get_preset(name)
        assert [task.dataset for task in preset.fitness.tasks] == ["cifar10", "fashion_mnist", "cifar100"]
        assert preset.fitness.model == "inception_v3"
        assert preset.fitness.epochs == epochs and preset.search.generations == generations
        assert preset.fitness.batch_size == 64 and preset.fitness.validation_split == 0.1
        assert preset.fitness.metric == "loss" and preset.fitness.averaging == "thesis"
    search = get_preset("quick").search
    assert (search.population, search.generations) == (8, 4)
    assert (search.crossover_pb, search.mutpb_subtree, search.mutpb_point) == (0.5, 0.3, 0.1)
    assert (search.init_min_height, search.init_max_height, search.max_height, search.max_size) == (2, 6, 17, 60)
    assert search.constant_range == (-1.0, 1.0)


def test_quick_preset_has_several_digit_tasks():
    fitness = get_preset("quick").fitness
    assert fitness.model == "small_cnn"
    assert fitness.metric in ("accuracy", "ce")
    assert [task.name for task in fitness.tasks] == ["digits", "digits-noise0.4", "digits-n300"]
    assert {task.dataset for task in fitness.tasks} == {"digits"}


def test_overrides_go_to_their_section():
    preset = get_preset("quick", epochs=2, population=12, metric="ce", crossover_pb=0.7)
    assert preset.fitness.epochs == 2 and preset.fitness.metric == "ce"
    assert preset.search.population == 12 and preset.search.crossover_pb == 0.7
    assert PRESETS["quick"].fitness.epochs == 6  # the registry is untouched
    with pytest.raises(ValueError) as caught:
        get_preset("quick", epoch=3)
    assert "epoch" in str(caught.value) and "epochs" in str(caught.value) and "population" in str(caught.value)
    with pytest.raises(ValueError, match="unknown preset 'fast'.*quick"):
        get_preset("fast")


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"epochs": 0}, "epochs"),
        ({"epochs": 2.5}, "epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"learning_rate": -1.0}, "learning_rate"),
        ({"metric": "f1"}, "unknown metric"),
        ({"averaging": "median"}, "unknown averaging"),
        ({"weight": 1.5}, "weight"),
        ({"validation_split": 1.0}, "validation_split"),
        ({"validation_split": 0}, "validation_split"),
        ({"threads": -1}, "threads"),
        ({"tasks": []}, "tasks"),
        ({"tasks": ["digits", "imagenet"]}, "unknown dataset 'imagenet'"),
        ({"tasks": [{"dataset": "digits", "label_noise": 2.0}]}, "label_noise"),
        ({"tasks": ["digits", "digits"]}, "distinct"),
        ({"model": "resnet"}, "unknown model"),
        ({"max_train_samples": 0}, "max_train_samples"),
        ({"chance_after": -1}, "chance_after"),
        ({"divergence_factor": 1.0}, "divergence_factor"),
        ({"population": 1}, "population"),
        ({"generations": 0}, "generations"),
        ({"crossover_pb": 1.5}, "crossover_pb"),
        ({"mutpb_point": -0.1}, "mutpb_point"),
        ({"init_min_height": 0}, "init_min_height"),
        ({"init_max_height": 1}, "init_max_height"),
        ({"max_height": 5}, "max_height"),
        ({"max_size": 0}, "max_size"),
        ({"constant_range": (1.0, -1.0)}, "constant_range"),
        ({"constant_range": "wide"}, "constant_range"),
    ],
)
def test_invalid_settings_fail_at_construction(overrides, message):
    with pytest.raises(ValueError, match=message):
        get_preset("quick", **overrides)


@pytest.mark.parametrize("name", list(PRESETS))
def test_json_round_trip(name):
    preset = get_preset(name, seed=3, data_dir="/data", max_train_samples=1000)
    data = json.loads(json.dumps(preset.to_dict()))
    assert Preset.from_dict(data) == preset
    assert FitnessConfig.from_dict(data["fitness"]) == preset.fitness
    assert SearchConfig.from_dict(data["search"]) == preset.search


def test_from_dict_rejects_unknown_fields():
    data = get_preset("quick").to_dict()
    data["fitness"]["learning_rte"] = 0.1
    with pytest.raises(ValueError, match="learning_rte"):
        Preset.from_dict(data)
    with pytest.raises(ValueError, match="lacks"):
        Preset.from_dict({"name": "x"})


def test_tasks_accept_names_dicts_and_specs():
    config = FitnessConfig(tasks=["digits", {"dataset": "digits", "label_noise": 0.2}, TaskSpec("digits", name="d3")])
    assert [task.name for task in config.tasks] == ["digits", "digits-noise0.2", "d3"]
    assert FitnessConfig(tasks="digits").tasks == (TaskSpec("digits"),)


def test_global_sample_cap_applies_to_every_task():
    config = get_preset("quick", max_train_samples=200).fitness
    assert [task.max_train_samples for task in config.resolved_tasks()] == [200, 200, 200]
    config = get_preset("quick", max_train_samples=500).fitness
    assert [task.max_train_samples for task in config.resolved_tasks()] == [500, 500, 300]
    assert get_preset("quick").fitness.resolved_tasks() == get_preset("quick").fitness.tasks


def test_default_metric_is_documented():
    assert FitnessConfig().metric == "accuracy"
    assert "tiny constant" in FitnessConfig.__doc__
