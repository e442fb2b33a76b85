"""Watch a search while it runs: the hall of fame after every generation, then ``show``."""

import pathlib
import tempfile

from deap_lossgp.app.cli import main
from deap_lossgp.gp.expression import to_string
from deap_lossgp.search.driver import make_config, run_search
from deap_lossgp.search.halloffame import format_fitness, read_hall_of_fame


def report(run, logbook, halloffame):
    """Called after each generation, once logbook.csv and hall_of_fame.csv are rewritten."""
    rows = read_hall_of_fame(run.hall_of_fame)  # what another process (or `deap-lossgp show`) reads now
    print(f"generation {logbook[-1]['gen']}: {len(rows)} distinct losses kept")
    for row in rows[:3]:
        print(f"  {row['rank']}. {format_fitness((row['wins'], row['improvement']))}  {row['formula']}")


with tempfile.TemporaryDirectory() as workspace:
    run_dir = pathlib.Path(workspace) / "run"
    config = make_config("quick", backend="serial", population=4, generations=1, epochs=1, tasks=["digits"],
                         max_train_samples=100, hall_of_fame=5, confirm_seeds=2)
    population, logbook, halloffame, best = run_search(run_dir, config, progress=False, on_generation=report)
    # best.json holds the confirmed best: the hall of fame's member that did best on fresh seeds.
    assert len(halloffame) <= 5 and best["expression"] in {to_string(member) for member in halloffame}
    print("confirmed best:", best["formula"], "| verdict:", best["verdict"])
    main(["show", str(run_dir)])
