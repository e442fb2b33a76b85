"""The thesis's §4.3 failure, reproduced: comparing loss values rewards scale.

Cross-entropy multiplied by a tiny constant and the NGL loss are evaluated on
the bundled digits with the thesis's ``loss`` metric, then the same trained
models are scored with the default ``accuracy`` metric.
"""

import tempfile

from deap_lossgp.fitness import LossEvaluator, score
from deap_lossgp.gp.losses import REFERENCE_EXPRESSIONS

candidates = {
    "0.001 x cross-entropy": f"mul(0.001, {REFERENCE_EXPRESSIONS['ce']})",
    "NGL": REFERENCE_EXPRESSIONS["ngl"],
}

with tempfile.TemporaryDirectory() as baselines:
    # One task and 3 epochs keep this quick; the rest is the "quick" preset.
    fitness = LossEvaluator(preset="quick", tasks=["digits"], epochs=3, metric="loss", baseline_dir=baselines)
    fitness.prepare()  # train (or load) the cross-entropy baseline first
    records = {label: fitness.evaluate_detailed(text) for label, text in candidates.items()}

print(f"{'model':24}{'val loss':>10}{'val acc':>9}   fitness by loss value   fitness by accuracy")
results = {}
for label, record in records.items():
    task = record["tasks"]["digits"]
    if not results:
        reference = task["baseline"]
        print(f"{'cross-entropy':24}{reference['val_loss']:10.4g}{reference['val_accuracy']:9.3f}")
    by_loss = record["fitness"]
    by_accuracy, _ = score([task], [task["baseline"]], metric="accuracy")
    results[label] = by_loss, by_accuracy
    print(f"{label:24}{task['val_loss']:10.4g}{task['val_accuracy']:9.3f}   "
          f"({by_loss[0]:g}, {by_loss[1]:+.4f})        ({by_accuracy[0]:g}, {by_accuracy[1]:+.4f})")

# By loss value, the rescaled loss "wins" by almost 100 % and NGL, whose values
# are larger than cross-entropy's, loses, whatever the models learnt.
assert results["0.001 x cross-entropy"][0][0] == 1 and results["0.001 x cross-entropy"][0][1] > 0.99
assert results["NGL"][0][0] == 0
# By accuracy, the rescaled loss does not win.
assert results["0.001 x cross-entropy"][1][0] == 0
