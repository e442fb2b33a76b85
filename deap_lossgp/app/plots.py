"""A run's ``fitness.png``: wins and average improvement per generation.

Two panels share the generation axis: the number of tasks won (best and
median of the population) on top, the average improvement over
cross-entropy below.  A value of ``-inf`` (nothing in the population
trained) cannot be drawn on a scale, so it is marked by a red triangle at
the bottom edge of its panel and named in the legend, instead of leaving a
silent gap.
"""

import math

from ..search.rundir import logbook_rows

__all__ = ["fitness_figure", "plot_fitness"]

# (panel, logbook column, label): the best is the lexicographic best (wins first), as the search ranks.
_SERIES = (
    (0, "best_max", 0, "best"),
    (0, "wins_median", None, "median"),
    (1, "best_max", 1, "best"),
    (1, "improvement_median", None, "median"),
)


def _value(row, column, index):
    value = row.get(column)
    if value is None:
        return None
    return float(value[index] if index is not None else value)


def plot_fitness(path, logbook):
    """Draw a search's fitness per generation into a PNG file.

    :param path: the file to write (a run's ``fitness.png``).
    :param logbook: the search's :class:`deap.tools.Logbook`.
    :returns: the path.
    """
    fitness_figure(logbook).savefig(path, dpi=100)
    return path


def fitness_figure(logbook):
    """A search's fitness per generation, as a figure.

    :param logbook: the search's :class:`deap.tools.Logbook` (with the
                    ``wins``, ``improvement`` and ``best`` chapters of
                    :func:`~deap_lossgp.search.driver.fitness_statistics`).
    :returns: a :class:`matplotlib.figure.Figure` with two axes.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    rows = logbook_rows(logbook)
    figure = Figure(figsize=(6, 5))
    FigureCanvasAgg(figure)  # its own canvas: drawing never switches pyplot's global backend
    axes = figure.subplots(2, 1, sharex=True)
    axes[0].set_ylabel("tasks won")
    axes[1].set_ylabel("average improvement\nover cross-entropy")
    axes[1].set_xlabel("generation")
    axes[0].set_title("Fitness per generation")
    failed_labelled = False
    for panel, column, index, label in _SERIES:
        points = [(row["gen"], _value(row, column, index)) for row in rows]
        points = [(gen, value) for gen, value in points if value is not None]
        if not points:
            continue
        finite = [(gen, value) for gen, value in points if math.isfinite(value)]
        line = axes[panel].plot(*zip(*finite), marker="o", label=label)[0] if finite else None
        failed = [gen for gen, value in points if not math.isfinite(value)]
        if failed:
            # y in axes coordinates: the bottom edge, whatever the finite values' range.
            axes[panel].plot(failed, [0.02] * len(failed), linestyle="none", marker="v", markersize=9,
                             color="tab:red" if line is None else line.get_color(),
                             markeredgecolor="tab:red", transform=axes[panel].get_xaxis_transform(),
                             label=None if failed_labelled else "-inf: nothing trained")
            failed_labelled = True
    for axis in axes:
        axis.grid(alpha=0.3)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize="small")
    figure.tight_layout()
    return figure
