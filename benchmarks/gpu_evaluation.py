"""What a ``paper-small`` / ``paper-large`` search will cost on this GPU.

Runs the training of one ``paper-small`` evaluation (InceptionV3 from scratch
on NGL's input pipeline, every task of the preset) through the same code as
a search (:func:`~deap_lossgp.fitness.training.train_tasks`), cut down to a
given number of steps per task, for float32 and ``mixed_float16`` and with
XLA off and on.  Each configuration trains every task twice, with *warmup*
and with *warmup + steps* training steps (one epoch each, the same small
validation slice), so the difference is the time of *steps* steady steps,
free of model building and graph tracing.  It prints per configuration and
task:

* steps per second and the time of one full epoch (the task's training steps
  plus its validation steps at the training rate: an upper bound, since a
  validation step only runs forward);
* the projected time of one full evaluation (every task, the preset's
  epochs, plus the measured fixed cost of building and tracing per task);
* the projected time of a full small and large search: Algorithm 1 trains
  P + T·N candidates (8 + 4·3 = 20 small, 8 + 12·3 = 44 large), the NGL
  baseline P + T·P (40 and 104), each plus the one-off cross-entropy
  baselines (one evaluation's worth), at the large scale's 10 epochs.

Usage (on a GPU machine with the archives; see the docs' GPU page)::

    python benchmarks/gpu_evaluation.py --data-dir /data/archives [--steps 50]
    python benchmarks/gpu_evaluation.py --synthetic   # random images of the datasets' shapes

Without a GPU it says so and exits 0 after a tiny functional pass (a small
CNN on random images, two steps per configuration, nothing timed), so CI
runs it.  It exits 1 only when every configuration failed.

Not a test: it prints its figures.
"""

import argparse
import dataclasses
import math
import sys
import warnings

import numpy as np

# (height, width, channels, classes, training images) of the paper's datasets.
SHAPES = {"cifar10": (32, 32, 3, 10, 50000), "fashion_mnist": (28, 28, 1, 10, 60000),
          "cifar100": (32, 32, 3, 100, 50000)}
# Candidates trained per search: Algorithm 1 (P + T*N) and NGL (P + T*P), P = 8, N = 3.
SEARCHES = {"paper-small": (4, 6), "paper-large": (12, 10)}


def _parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=50, help="timed training steps per task (default 50)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first (default 10)")
    parser.add_argument("--data-dir", help="directory of the CIFAR/Fashion-MNIST archives (default: Keras's cache)")
    parser.add_argument("--synthetic", action="store_true", help="random images of the datasets' shapes")
    parser.add_argument("--tasks", nargs="+", choices=list(SHAPES), default=list(SHAPES), help="tasks to time")
    parser.add_argument("--precision", nargs="+", choices=["float32", "mixed_float16"],
                        default=["float32", "mixed_float16"])
    parser.add_argument("--xla", nargs="+", choices=["off", "on"], default=["off", "on"])
    return parser


def synthetic_task(name, seed=0, samples=None):
    """Random ``uint8`` images and labels with a dataset's shape and split sizes.

    :param name: a key of :data:`SHAPES`.
    :param seed: the random seed.
    :param samples: training images to make; default enough for the benchmark.
    :returns: a :class:`~deap_lossgp.fitness.datasets.TaskData`.
    """
    from deap_lossgp.fitness.datasets import TaskData, TaskSpec

    height, width, channels, classes, _ = SHAPES[name]
    rng = np.random.default_rng(seed)
    samples = samples or 64 * 200

    def images(count):
        return rng.integers(0, 256, size=(count, height, width, channels), dtype=np.uint8)

    def labels(count):
        return rng.integers(0, classes, size=count)

    return TaskData(TaskSpec(name), images(samples), labels(samples), images(256), labels(256),
                    images(64), labels(64), classes, 255.0)


def _cut(data, steps, batch_size):
    # One epoch of `steps` training steps and a fixed small validation slice.
    return dataclasses.replace(data, x_train=data.x_train[:steps * batch_size],
                               y_train=data.y_train[:steps * batch_size],
                               x_val=data.x_val[:2 * batch_size], y_val=data.y_val[:2 * batch_size])


def time_configuration(config, datas, steps, warmup):
    """Time one configuration on every task.

    :param config: a :class:`~deap_lossgp.fitness.FitnessConfig`.
    :param datas: the tasks' :class:`~deap_lossgp.fitness.datasets.TaskData`.
    :param steps: timed steps per task.
    :param warmup: untimed steps per task.
    :returns: per task ``(steps per second, fixed seconds per training)``.
    """
    import keras

    from deap_lossgp.fitness.training import train_model

    settings = {**config.training_arguments(), "epochs": 1, "chance_after": 0}
    results = []
    for data in datas:
        times = []
        for count in (warmup, warmup + steps) if steps else (warmup,):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                record = train_model(keras.losses.CategoricalCrossentropy(), _cut(data, count, config.batch_size),
                                     **settings)
            for warning in caught:
                if "jit_compile" in str(warning.message):
                    print(f"  note: {warning.message} (the augmentation layers do not support XLA)")
            if record["stop_reason"] != "completed":
                raise RuntimeError(f"training stopped: {record['stop_detail']}")
            times.append(record["time"])
        if not steps:
            continue
        if times[1] <= times[0]:
            raise RuntimeError(f"{steps} steps were too few to time; raise --steps")
        rate = steps / (times[1] - times[0])
        results.append((rate, max(times[0] - warmup / rate, 0.0)))
    return results


def _hours(seconds):
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds:.0f} s"


def report(config, names, sizes, measured):
    """Print the rates and the projections of one configuration.

    :param config: the :class:`~deap_lossgp.fitness.FitnessConfig` measured.
    :param names: the task names.
    :param sizes: per task ``(training steps, validation steps)`` of a full epoch.
    :param measured: :func:`time_configuration`'s result.
    :returns: the projected time of one full evaluation at the preset's epochs, in seconds.
    """
    per_epoch = [(train + val) / rate for (train, val), (rate, _) in zip(sizes, measured)]
    fixed = sum(overhead for _, overhead in measured)
    for name, (train, val), (rate, overhead), epoch in zip(names, sizes, measured, per_epoch):
        print(f"  {name}: {rate:.2f} steps/s, epoch ({train} + {val} steps) {_hours(epoch)}, "
              f"build and trace {overhead:.0f} s")
    projections = {}
    for preset, (generations, epochs) in SEARCHES.items():
        evaluation = epochs * sum(per_epoch) + fixed
        ours, ngl = 8 + generations * 3, 8 + generations * 8
        projections[preset] = evaluation
        print(f"  {preset}: one evaluation {_hours(evaluation)}; search: Algorithm 1 ({ours} trainings + "
              f"baselines) {_hours((ours + 1) * evaluation)}, NGL ({ngl} + baselines) {_hours((ngl + 1) * evaluation)}")
    return projections["paper-small"]


def full_sizes(name, config):
    """Training and validation steps of one full epoch of a paper task.

    :param name: a key of :data:`SHAPES`.
    :param config: the :class:`~deap_lossgp.fitness.FitnessConfig` (batch size, split).
    :returns: ``(training steps, validation steps)`` (CIFAR-10: 704 and 79).
    """
    images = SHAPES[name][4]
    validation = round(images * config.validation_split)
    return math.ceil((images - validation) / config.batch_size), math.ceil(validation / config.batch_size)


def main(argv=None):
    """Run the benchmark (or, without a GPU, the functional pass).

    :param argv: command-line arguments (default ``sys.argv[1:]``).
    :returns: the exit status.
    """
    args = _parser().parse_args(argv)
    from deap_lossgp.fitness import configure_tensorflow
    from deap_lossgp.search.presets import get_preset

    configure_tensorflow(0)
    import tensorflow as tf

    config = get_preset("paper-small", data_dir=args.data_dir).fitness
    gpu = bool(tf.config.list_physical_devices("GPU"))
    if gpu:
        steps, warmup, synthetic = args.steps, args.warmup, args.synthetic
    else:
        print("gpu_evaluation.py needs a GPU to measure the paper presets (TensorFlow sees none); "
              "running a tiny functional pass instead: a small CNN on random images, 2 steps, one task.")
        config = config.replace(model="small_cnn", upsample=2)
        steps, warmup, synthetic, args.tasks = 0, 2, True, args.tasks[:1]
    if synthetic:
        datas = [synthetic_task(name, samples=64 * (warmup + steps)) for name in args.tasks]
    else:
        from deap_lossgp.fitness import load_task

        datas = [load_task(task, config.seed, config.validation_split, config.data_dir)
                 for task in config.resolved_tasks() if task.dataset in args.tasks]
    names = [data.task.name for data in datas]
    sizes = [full_sizes(data.task.dataset, config) for data in datas]
    print(f"model {config.model}, upsampling x{config.upsample}, augmentation {'on' if config.augment else 'off'}, "
          f"batch {config.batch_size}, {steps} timed steps after {warmup} per task, "
          f"{'random' if synthetic else 'real'} images, TensorFlow {tf.__version__}")
    failures = 0
    for precision in args.precision:
        for xla in args.xla:
            print(f"{precision}, XLA {xla}:")
            try:
                measured = time_configuration(config.replace(precision=precision, xla=xla == "on"),
                                              datas, steps, warmup)
            except Exception as error:  # One configuration failing (e.g. XLA unsupported) must not hide the others.
                failures += 1
                print(f"  failed: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}")
                continue
            if gpu:
                report(config, names, sizes, measured)
            else:
                print("  trained: ok")
    return 1 if failures == len(args.precision) * len(args.xla) else 0


if __name__ == "__main__":
    sys.exit(main())
