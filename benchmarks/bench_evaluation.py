"""Benchmark of fitness evaluation: overhead over plain Keras, and memory.

Measures, on the ``quick`` preset:

1. the time of one evaluation (validity check, three trainings, scoring)
   against a bare ``model.fit`` of the same model and data with Keras's
   cross-entropy (a fresh model per task, same epochs, batch size and
   validation data): the ratio should stay <= 1.3.  The evaluation shares
   one compiled model between tasks of the same shape, so the same ratio is
   also given for a single task, where both sides build one model;
2. the resident memory growth over consecutive evaluations in one process
   (the evaluation cache is cleared, so every one trains): it should stay
   < 300 MB over 50.

Usage::

    python benchmarks/bench_evaluation.py [--evaluations 50] [--repeats 3]

Measured on 2 shared CPU cores (quick preset, TensorFlow 2.21, Keras 3.15):
one evaluation 7.2 s against 12.4 s of bare fits (ratio 0.58; one task
alone 0.85); +7.8 MB RSS over 50 evaluations.

Not a test: it prints its figures.
"""

import argparse
import os
import statistics
import tempfile
import time

CE_TREE = "neg(mul(y_true, log(y_pred)))"


def rss_mb():
    """Resident set size of this process (Linux ``/proc``).

    :returns: the size in MB.
    """
    with open("/proc/self/status", encoding="ascii") as stream:
        for line in stream:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("VmRSS not found in /proc/self/status")


def bare_fit(config, tasks=None):
    """Train the preset's model with Keras's cross-entropy on each task, as plain Keras code would.

    :param config: a :class:`~deap_lossgp.search.presets.FitnessConfig`.
    :param tasks: the tasks to train on; ``None`` for all of the configuration's.
    :returns: ``None``.
    """
    import keras

    from deap_lossgp.fitness import build_model, load_task

    for task in tasks or config.resolved_tasks():
        data = load_task(task, config.seed, config.validation_split, config.data_dir)
        x = data.x_train.astype("float32") / data.pixel_max
        y = keras.utils.to_categorical(data.y_train, data.num_classes)
        x_val = data.x_val.astype("float32") / data.pixel_max
        y_val = keras.utils.to_categorical(data.y_val, data.num_classes)
        keras.backend.clear_session()
        keras.utils.set_random_seed(config.seed)
        model = build_model(config.model, data.input_shape, data.num_classes)
        model.compile(
            optimizer=keras.optimizers.Adam(config.learning_rate), loss="categorical_crossentropy", metrics=["accuracy"]
        )
        model.fit(x, y, batch_size=config.batch_size, epochs=config.epochs, validation_data=(x_val, y_val), verbose=0)


def timed(function, *args):
    """Wall time of one call.

    :param function: the function to call.
    :param args: its arguments.
    :returns: seconds.
    """
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


def main():
    """Run the benchmark and print its figures.

    :returns: ``None``.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evaluations", type=int, default=50, help="evaluations for the memory figure (0 skips it)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repetitions (the median is reported)")
    args = parser.parse_args()

    from deap_lossgp.gp.expression import compile_loss
    from deap_lossgp.fitness import LossEvaluator, configure_tensorflow, load_task, train_model

    with tempfile.TemporaryDirectory() as baselines:
        fitness = LossEvaluator(preset="quick", baseline_dir=baselines)
        configure_tensorflow(fitness.config.threads)
        fitness.prepare()

        def evaluate():
            fitness.cache.clear()
            return fitness(CE_TREE)

        # Warm-up: data loading and TensorFlow start-up belong to neither side.
        evaluate()
        bare_fit(fitness.config)
        evaluations, bares = [], []
        for _ in range(args.repeats):
            evaluations.append(timed(evaluate))
            bares.append(timed(bare_fit, fitness.config))
        evaluation, bare = statistics.median(evaluations), statistics.median(bares)
        setting = f"{len(fitness.config.tasks)} tasks, {fitness.config.epochs} epochs"
        print(f"quick evaluation ({setting}): {evaluation:.2f} s (median of {args.repeats})")
        print(f"bare model.fit with cross-entropy, same model and data: {bare:.2f} s")
        print(f"ratio evaluation / bare fit: {evaluation / bare:.2f} (target <= 1.3)")

        config = fitness.config
        first = config.resolved_tasks()[0]
        data = load_task(first, config.seed, config.validation_split, config.data_dir)
        settings = {"model": config.model, "epochs": config.epochs, "batch_size": config.batch_size, "seed": config.seed}

        def train_one():
            train_model(compile_loss(CE_TREE), data, **settings)

        singles, single_bares = [], []
        for _ in range(args.repeats):
            singles.append(timed(train_one))
            single_bares.append(timed(bare_fit, config, [first]))
        single, single_bare = statistics.median(singles), statistics.median(single_bares)
        print(f"one task ({first.name}): train_model {single:.2f} s, bare model.fit {single_bare:.2f} s, "
              f"ratio {single / single_bare:.2f}")
        if not args.evaluations:
            return

        start_rss = rss_mb()
        checkpoints = {1, 10, 25, args.evaluations}
        start = time.perf_counter()
        for i in range(1, args.evaluations + 1):
            evaluate()
            if i in checkpoints:
                print(f"after {i:3d} evaluations: RSS {rss_mb():7.1f} MB (+{rss_mb() - start_rss:6.1f} MB)", flush=True)
        elapsed = time.perf_counter() - start
        growth = rss_mb() - start_rss
        print(f"{args.evaluations} evaluations in {elapsed:.0f} s ({elapsed / args.evaluations:.2f} s each)")
        print(f"RSS growth over {args.evaluations} evaluations: {growth:.1f} MB (target < 300 MB)")
        print(f"cpu cores: {os.cpu_count()}, threads per evaluation: {fitness.config.threads}")


if __name__ == "__main__":
    main()
