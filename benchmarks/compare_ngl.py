"""Rerun the thesis's comparison with the NGL algorithm (its Algorithm 2).

The same code as ``deap-lossgp benchmark``; every option of that command is
accepted here::

    python benchmarks/compare_ngl.py --seeds 5 --output quick-benchmark

The committed results are in ``benchmarks/results/quick-screened/`` (the default
validity rule) and ``benchmarks/results/quick-thesis/`` (``--set validity=thesis``).
"""

import sys

from deap_lossgp.app.cli import main

if __name__ == "__main__":
    sys.exit(main(["benchmark", *sys.argv[1:]]))
