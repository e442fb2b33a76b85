"""The named configurations, and how to change them."""

from deap_lossgp.search.presets import PRESETS, get_preset

for name, preset in PRESETS.items():
    fitness, search = preset.fitness, preset.search
    print(f"{name}: {preset.description}")
    print(f"    tasks {[task.name for task in fitness.tasks]}, model {fitness.model}, "
          f"{fitness.epochs} epochs, batch {fitness.batch_size}, metric {fitness.metric}")
    print(f"    population {search.population}, {search.generations} generations")

# The thesis's Table 4.1 and training logs: 8 trees, 6 epochs x 4 generations
# (small scale) and 10 epochs x 12 generations (large scale), batch size 64.
for name, epochs, generations in (("paper-small", 6, 4), ("paper-large", 10, 12)):
    paper = PRESETS[name]
    assert (paper.search.population, paper.fitness.epochs, paper.search.generations) == (8, epochs, generations)
    assert paper.fitness.model == "inception_v3" and paper.fitness.batch_size == 64
    assert [task.dataset for task in paper.fitness.tasks] == ["cifar10", "fashion_mnist", "cifar100"]
    assert paper.fitness.metric == "loss" and paper.fitness.validation_split == 0.1

quick = PRESETS["quick"]
assert [task.name for task in quick.fitness.tasks] == ["digits", "digits-noise0.4", "digits-n300"]
assert (quick.fitness.model, quick.fitness.epochs, quick.fitness.batch_size) == ("small_cnn", 6, 32)
assert (quick.search.population, quick.search.generations, quick.fitness.metric) == (8, 4, "accuracy")

# Any field can be overridden by name; bad values are refused before anything runs.
mine = get_preset("paper-small", metric="accuracy", data_dir="/data/archives", population=12)
print("overridden:", mine.fitness.metric, mine.fitness.data_dir, mine.search.population)
try:
    get_preset("paper-small", epoch=3)
except ValueError as error:
    print("refused:", error)

# One flag switches every setting where the thesis as written and our improvements differ.
assert PRESETS["paper-small"].mode == "thesis" and PRESETS["quick"].mode == "ours"
ours = get_preset("paper-small", mode="ours")
print("paper-small in our mode:", ours.fitness.validity, ours.fitness.metric,
      ours.search.init_max_height, ours.search.point_mutation)
assert (ours.fitness.validity, ours.fitness.metric) == ("screened", "accuracy")
assert PRESETS["paper-small"].search.init_max_height == 100
