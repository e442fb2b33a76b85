"""Rerun the thesis's comparison with the NGL algorithm (its Algorithm 2).

The same code as ``deap-lossgp benchmark``; every option of that command is
accepted here::

    python benchmarks/compare_ngl.py --seeds 5 --output quick-benchmark

The committed results are in ``benchmarks/results/quick-arms/`` (the three arms
of this version); ``benchmarks/results/quick-screened/`` and ``quick-thesis/``
hold the two-algorithm comparison of version 0.1.
"""

import sys

from deap_lossgp.app.cli import main

if __name__ == "__main__":
    sys.exit(main(["benchmark", *sys.argv[1:]]))
