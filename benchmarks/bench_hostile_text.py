"""Benchmark of hostile and oversized loss expressions: time and memory until refused.

Each text is given to the parser and to ``deap-lossgp evaluate`` (in this
process, through :func:`deap_lossgp.app.cli.main`); every one must be refused
with a one-line error in under 2 s, with under 200 MB of Python allocations
(``tracemalloc``'s peak), and nothing in it executed.

Usage::

    python benchmarks/bench_hostile_text.py

Not a test (``tests/test_text_input.py`` asserts the bounds): it prints its figures.
"""

import contextlib
import io
import time
import tracemalloc

from deap_lossgp.app.cli import main
from deap_lossgp.gp.standalone import parse

TEXTS = {
    "20,000-deep neg(...)": "neg(" * 20_000 + "y_pred" + ")" * 20_000,
    "2,000-deep neg(...)": "neg(" * 2_000 + "y_pred" + ")" * 2_000,
    "2,000 nested parentheses": "(" * 2_000 + "y_pred" + ")" * 2_000,
    "2,000 minus signs": "-" * 2_000 + "y_pred",
    "sum of 5,000 terms": "+".join(["y_pred"] * 5_000),
    "120 KB unknown name": "a" * 120_000,
    "90 KB unknown name": "add(y_true, " + "b" * 90_000 + ")",
    "(y_pred**128)**128...": "(" * 20 + "y_pred" + "**128)" * 20,
    "1e309": "mul(1e309, y_pred)",
    "nan": "mul(nan, y_pred)",
    "Arabic-Indic digit": "mul(\u0663, y_pred)",
    "code": "__import__('os').system('echo executed')",
}


def measure(function, text):
    tracemalloc.start()
    start = time.perf_counter()
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            outcome = function(text)
    except ValueError as error:
        outcome = str(error)
    except SystemExit:  # an argparse error, printed on stderr
        outcome = None
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return seconds, peak, outcome if isinstance(outcome, str) else stderr.getvalue().strip()


def main_benchmark():
    evaluate = lambda text: main(["evaluate", text])  # noqa: E731 -- returns 2 and prints one line
    print(f"{'input':28}{'parse s':>9}{'parse MB':>10}{'evaluate s':>12}{'evaluate MB':>13}  message (evaluate)")
    worst = [0.0, 0.0]
    for name, text in TEXTS.items():
        parse_s, parse_peak, _ = measure(parse, text)
        eval_s, eval_peak, message = measure(evaluate, text)
        worst = [max(worst[0], parse_s, eval_s), max(worst[1], parse_peak, eval_peak)]
        print(f"{name:28}{parse_s:9.3f}{parse_peak / 1e6:10.1f}{eval_s:12.3f}{eval_peak / 1e6:13.1f}  "
              f"{message[:90]}")
    print(f"worst: {worst[0]:.3f} s, {worst[1] / 1e6:.1f} MB (bounds: 2 s, 200 MB)")


if __name__ == "__main__":
    main_benchmark()
