"""The package's version, and the versions of what a run runs on.

The lowest layer of the package: it imports nothing of deap_lossgp, so
every layer can record versions without importing the package root (the top
layer, which imports everything).
"""

import importlib
import platform

__all__ = ["__version__", "environment"]

#: The package's version.
__version__ = "0.2.0"


def environment(frameworks=()):
    """The versions a run or a benchmark records, in one dictionary.

    :param frameworks: names of further modules whose versions to add, such
                       as ``("keras",)`` or ``("tensorflow", "torch")``.
                       They are imported when asked for, never otherwise, so
                       the default starts no TensorFlow and gives the same
                       keys in every process.
    :returns: ``{"deap_lossgp": ..., "deap": ..., "numpy": ..., "python": ...}``
              and one entry per framework, in that order.
    :raises ValueError: for a framework that is not installed or has no
                        ``__version__``.
    """
    import deap
    import numpy

    if isinstance(frameworks, str):
        raise ValueError(f"frameworks must be a sequence of module names, got the string {frameworks!r}; "
                         f"write ({frameworks!r},)")
    versions = {"deap_lossgp": __version__, "deap": deap.__version__, "numpy": numpy.__version__,
                "python": platform.python_version()}
    for name in frameworks:
        try:
            versions[name] = importlib.import_module(name).__version__
        except (ImportError, AttributeError):
            raise ValueError(f"cannot report the version of {name!r}: it is not installed or has no "
                             "__version__") from None
    return versions
