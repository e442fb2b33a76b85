"""Make a small run directory, read every file of it, and use the best loss."""

import csv
import json
import pathlib
import sys
import tempfile

from deap_lossgp.app.cli import main
from deap_lossgp.search.rundir import read_records

with tempfile.TemporaryDirectory() as workspace:
    run = pathlib.Path(workspace) / "run"
    # The same as typing: deap-lossgp evolve --population 2 --generations 1 --epochs 1 ...
    status = main([
        "evolve", "--population", "2", "--generations", "1", "--epochs", "1",
        "--set", 'tasks=["digits"]', "--set", "max_train_samples=300", "--set", "confirm_seeds=2",
        "--backend", "serial", "--quiet", "--output", str(run),
    ])
    assert status == 0

    config = json.loads((run / "config.json").read_text())
    print("preset", config["preset"], "| algorithm", config["algorithm"], "| search seed", config["search_seed"])

    with open(run / "logbook.csv", newline="") as stream:
        for row in csv.DictReader(stream):
            print(f"generation {row['gen']}: {row['nevals']} evaluations, best improvement {row['improvement_max']}")

    records = read_records(run / "evaluations.jsonl")
    for record in records:
        print(f"{record['status']:8} {record['fitness']}  {record['expression']}"
              + (f"  ({record['reason']})" if record["reason"] else ""))

    best = json.loads((run / "best.json").read_text())
    print("best:", best["expression"], "=", best["formula"], "fitness", best["fitness"], "verdict", best["verdict"])
    assert best["expression"] in {record["expression"] for record in records}

    # Use the exported loss: best_loss.py needs only NumPy and Keras.
    sys.path.insert(0, str(run))
    from best_loss import EvolvedLoss

    import keras
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = digits.images[..., None] / 16.0, digits.target  # integer labels are one-hot encoded by the loss
    model = keras.Sequential([
        keras.Input(shape=(8, 8, 1)),
        keras.layers.Flatten(),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss=EvolvedLoss(), metrics=["accuracy"])
    model.fit(x, y, epochs=1, batch_size=64, verbose=0)
    model.save(pathlib.Path(workspace) / "model.keras")
    reloaded = keras.models.load_model(pathlib.Path(workspace) / "model.keras")  # best_loss is imported
    # End of the exported loss
    assert reloaded.loss.expression == best["expression"]
