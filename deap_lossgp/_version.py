"""The package's version and the versions a run records: the ground layer, importing nothing of the package."""

import os
import platform

__all__ = ["__version__", "environment"]

__version__ = "0.2.0"


def environment(machine=False):
    """The versions a run or a benchmark records.

    :param machine: also describe the machine (processor, CPU cores, GPUs;
                    the GPU count imports TensorFlow).
    :returns: a JSON-ready dict.
    """
    import deap
    import numpy

    found = {"deap_lossgp": __version__, "deap": deap.__version__, "numpy": numpy.__version__,
             "python": platform.python_version()}
    if machine:
        import keras
        import tensorflow as tf

        gpus = len(tf.config.list_physical_devices("GPU"))
        found.update(keras=keras.__version__, tensorflow=tf.__version__,
                     machine=f"{platform.machine()}, {os.cpu_count()} CPU cores, "
                             f"{f'{gpus} GPU(s)' if gpus else 'no GPU'}")
    return found
