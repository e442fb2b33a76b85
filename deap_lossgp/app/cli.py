"""The ``deap-lossgp`` command.

``deap-lossgp evolve`` (no arguments) searches on the bundled digits data with
the ``quick`` preset; see ``deap-lossgp <command> --help`` for each command.
Errors in the arguments or the configuration print one clear line and exit
with status 2, without a traceback.

Exit statuses:

* 0: the command finished; for a search, whether its best loss beats
  cross-entropy is its last word (``use it:`` only when the confirmed best
  beats cross-entropy on the held-out test split beyond seed noise, else
  ``verdict:``), also in ``best.json``'s ``verdict``;
* 2: an error in the arguments or the configuration;
* 3: nothing trained: the search finished but no candidate loss completed
  training, so there is no best loss to use (``evolve``, ``resume``, and
  ``export`` of such a run); the message says how the evaluations ended and
  what to try;
* 130: interrupted (Ctrl-C or ``SIGTERM``); ``deap-lossgp resume RUN_DIR`` continues.

A file that cannot be read or written (a full disk, a read-only directory,
a malformed ``config.json``, ``best.json`` or checkpoint) is such an error too:
one line naming the file and the fix.  Nothing written before is lost.

``resume`` runs no code named by the run directory's ``config.json``: a model
given as ``package.module:function`` is imported only with ``--trust-model``
(checkpoints are pickles, so resume only your own or trusted runs anyway).
"""

import argparse
import contextlib
import datetime
import json
import pathlib
import re
import signal
import sys
import warnings

from ..algorithms import LOG_FIELDS
from ..checks import json_dumps, open_for_reading
from ..search.driver import ALGORITHMS
from ..search.parallel import BACKENDS, SchedulerLostError

__all__ = ["main", "build_parser"]

_QUIET_HELP = "print only the final summary (no run directory line, progress bar or logbook rows)"
#: Commands that train, and so import TensorFlow.
_TRAINING_COMMANDS = ("evolve", "resume", "evaluate", "benchmark")
#: Exit status when no candidate loss completed training.
_NOTHING_TRAINED = 3
_EXIT_STATUSES = ("exit status: 0 success, 2 error in the arguments or the configuration, 3 nothing trained "
                  "(no candidate loss completed training, so there is no best loss), 130 interrupted.")


class CommandError(Exception):
    """A user error: printed as one line, exit status 2."""


def _parse_assignment(text):
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected FIELD=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def _add_preset_arguments(parser):
    parser.add_argument("--preset", default="quick", help="named configuration: quick (default), paper-small, paper-large")
    parser.add_argument("--epochs", type=int, help="training epochs per evaluation (overrides the preset)")
    parser.add_argument(
        "--set", dest="overrides", action="append", type=_parse_assignment, default=[], metavar="FIELD=VALUE",
        help="override any preset field, e.g. --set metric=accuracy --set batch_size=32 (repeatable)",
    )
    parser.add_argument("--data", action="append", default=[], metavar="PATH",
                        help="your own task: a .npz file (x_train, y_train, optional x_test, y_test) or a folder "
                             "of class subfolders of images; repeat for several tasks (replaces the preset's)")


class _Parser(argparse.ArgumentParser):
    """An argument parser that reads evaluate's expression as a value even when
    it starts with a minus sign (``-y_true*log(y_pred)``), which argparse would
    take for an option: a space put before it, which the expression parser
    skips, tells argparse it is a value."""

    # Words that are options (or "-"): any other word starting with "-" is an expression.
    _OPTION = re.compile(r"--[A-Za-z][\w-]*(=.*)?|-h|-")

    def error(self, message):
        """Argument errors as one line (``--help`` gives the rest), exit status 2."""
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")

    def parse_known_args(self, args=None, namespace=None):
        args = list(sys.argv[1:] if args is None else args)
        if args[:1] == ["evaluate"]:
            for index, word in enumerate(args[1:], 1):
                if word == "--":
                    break
                if word.startswith("-") and not self._OPTION.fullmatch(word):
                    args[index] = " " + word
                    break
        return super().parse_known_args(args, namespace)


def _add_verbose_argument(parser):
    parser.add_argument("--verbose", action="store_true",
                        help="also show TensorFlow's own log lines (hidden by default; a TF_CPP_MIN_LOG_LEVEL "
                             "set in the environment is respected)")


def build_parser():
    """Build the argument parser.

    :returns: an :class:`argparse.ArgumentParser`.
    """
    parser = _Parser(
        prog="deap-lossgp", description="Evolve loss functions for image classification with genetic programming.",
        epilog=_EXIT_STATUSES,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    evolve = commands.add_parser("evolve", help="run a loss-function search", description="Run a loss-function search.",
                                 epilog=_EXIT_STATUSES)
    _add_preset_arguments(evolve)
    evolve.add_argument("--algorithm", default="sample-tournament", choices=list(ALGORITHMS),
                        help="thesis Algorithm 1 (default), the NGL baseline or our asynchronous variant")
    evolve.add_argument("--population", type=int, help="population size P (preset default: 8)")
    evolve.add_argument("--generations", type=int, help="number of generations")
    evolve.add_argument("--seed", "--search-seed", dest="search_seed", type=int, default=0,
                        help="search seed: the initial population and every variation (default 0); the training "
                             "seed is the fitness setting --set seed=N")
    evolve.add_argument("--backend", default="process", choices=list(BACKENDS),
                        help="how evaluations run: a local process pool (default), serially, SCOOP "
                             "(start with python -m scoop) or Dask (a local cluster, or --scheduler)")
    evolve.add_argument("--workers", type=int,
                        help="worker processes for --backend process and a local Dask cluster (default: CPU "
                             "cores); trainings at once on an existing Dask cluster (default: its workers)")
    evolve.add_argument("--scheduler", metavar="ADDRESS",
                        help="with --backend dask: join the Dask scheduler at HOST:PORT, tcp://... or tls://..., "
                             "or named by a scheduler file, instead of starting a local cluster")
    evolve.add_argument("--output", type=pathlib.Path,
                        help="run directory (default: runs/<YYYYmmdd-HHMMSS>-<preset>-<algorithm>-seed<seed>)")
    evolve.add_argument("--quiet", action="store_true", help=_QUIET_HELP)
    _add_verbose_argument(evolve)

    resume = commands.add_parser("resume", help="continue a stopped search", description="Continue a stopped search.",
                                 epilog=_EXIT_STATUSES)
    resume.add_argument("run_dir", type=pathlib.Path)
    resume.add_argument("--scheduler", metavar="ADDRESS",
                        help="a run on a Dask cluster: join the scheduler at this address (or scheduler file) "
                             "instead of the one config.json names, e.g. one restarted on another port")
    resume.add_argument("--quiet", action="store_true", help=_QUIET_HELP)
    _add_verbose_argument(resume)
    resume.add_argument("--trust-model", action="store_true",
                        help="import the model builder that config.json names as package.module:function "
                             "(only for runs you wrote or trust)")
    resume.add_argument("--trust-checkpoint", action="store_true",
                        help="load a checkpoint without a digest header (version 0.1), which can run code when "
                             "unpickled, and rewrite it in the current format (only for runs you wrote)")

    evaluate = commands.add_parser("evaluate", help="train with one loss and compare it to cross-entropy",
                                   description="Train with one loss expression and compare it to cross-entropy.")
    evaluate.add_argument("expression", help='e.g. "neg(mul(y_true, log(y_pred)))", "-y_true*log(y_pred)" or a '
                                             'reference name (ngl, focal...)')
    _add_preset_arguments(evaluate)
    evaluate.add_argument("--repeats", type=int, default=1, metavar="N",
                          help="train with N seeds (the preset's seed and the next ones), the loss and "
                               "cross-entropy under each, and report mean ± std and a paired comparison "
                               "(default 1)")
    evaluate.add_argument("--json", action="store_true", help="print the full record as JSON")
    _add_verbose_argument(evaluate)

    export = commands.add_parser("export", help="export the best loss of a run",
                                 description="Export the best loss of a run.", epilog=_EXIT_STATUSES)
    export.add_argument("run_dir", type=pathlib.Path)
    export.add_argument("--format", choices=["keras", "torch", "numpy", "json", "latex", "py"], default="keras",
                        help="keras (default): a Keras loss class; torch: a torch.nn.Module loss; numpy: a NumPy "
                             "function; json: best.json; latex: the formula; py: former name of keras")
    export.add_argument("--output", type=pathlib.Path, help="file to write (default: standard output)")
    export.add_argument("--rescale", action="store_true",
                        help="divide the loss by its gradient scale relative to cross-entropy's at a reference "
                             "prediction (printed), so plain SGD takes cross-entropy-sized steps; Adam is "
                             "unaffected (keras, torch, numpy)")

    show = commands.add_parser("show", help="summarise a run", description="Summarise a run directory.")
    show.add_argument("run_dir", type=pathlib.Path)

    bench = commands.add_parser(
        "benchmark", help="compare the thesis's Algorithm 1, NGL and ours, run by run",
        description="Run the thesis's Algorithm 1, the NGL algorithm and ours (re-breeding, racing, "
                    "confirmation) per seed, then retrain each run's best on fresh seeds and the held-out "
                    "test split, paired by seed.",
    )
    _add_preset_arguments(bench)
    bench.add_argument("--population", type=int, help="population size P")
    bench.add_argument("--generations", type=int, help="number of generations")
    bench.add_argument("--seeds", type=int, default=1, help="repeat the comparison for seeds 0..N-1 (default 1)")
    bench.add_argument("--confirm-seeds", type=int, default=5,
                       help="fresh training seeds of the held-out measurement and of ours' confirmation (default 5)")
    bench.add_argument("--backend", default="process", choices=list(BACKENDS))
    bench.add_argument("--workers", type=int, help="worker processes (default: CPU cores)")
    bench.add_argument("--output", type=pathlib.Path, default=pathlib.Path("benchmark-results"),
                       help="output directory; finished seeds in it are not run again (default: benchmark-results)")
    _add_verbose_argument(bench)

    return parser


def _overrides(args):
    overrides = dict(args.overrides)
    for name in ("epochs", "population", "generations"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    if getattr(args, "data", None):
        from ..fitness.datasets import task_from_path

        # Dicts, not TaskSpecs: the overrides are stored in config.json as they are.
        overrides["tasks"] = [task_from_path(path).to_dict() for path in args.data]
    return overrides


def _cmd_evolve(args):
    from ..search.driver import make_config

    config = make_config(preset=args.preset, algorithm=args.algorithm, search_seed=args.search_seed,
                         backend=args.backend, workers=args.workers, scheduler=args.scheduler, **_overrides(args))
    output = args.output or pathlib.Path("runs") / (
        f"{datetime.datetime.now():%Y%m%d-%H%M%S}-{args.preset}-{args.algorithm}-seed{args.search_seed}"
    )
    if output.exists() and not output.is_dir():
        raise CommandError(f"--output {output} is a file; give a new directory for the run")
    if (output / "config.json").exists():
        raise CommandError(f"{output} already holds a run; use 'deap-lossgp resume {output}' or another --output")
    args.run_dir = output
    if not args.quiet:
        print(f"run directory: {output}")
    return _search(args, output, config)


def _cmd_resume(args):
    from ..fitness.models import is_import_path
    from ..search.driver import resolve_config

    run = _existing_run(args.run_dir)
    config = run.read_config()
    done, generations = _generations_done(run), resolve_config(config)[1].generations
    if done > generations:
        print(f"{args.run_dir} is finished: all {generations} generations ran, there is nothing to resume "
              f"(its results: deap-lossgp show {args.run_dir})")
        if run.best.exists():
            _finish(run.read_best(required=("expression", "formula", "fitness")), args.run_dir)
            return 0
        _print_nothing_trained(args.command, args.run_dir, _untrained_statuses(run) or {})
        return _NOTHING_TRAINED
    model = config["resolved"].get("fitness", {}).get("model") if isinstance(config["resolved"], dict) else None
    if is_import_path(model) and not args.trust_model:
        raise CommandError(f"{run.config} names the model {model!r}, which resuming would import and run; "
                           f"add --trust-model if you wrote this run or trust its source")
    if args.trust_checkpoint and run.checkpoint.exists():
        from ..checkpoint import load_checkpoint, save_checkpoint
        from ..search.toolbox import make_toolbox

        make_toolbox()  # the classes a checkpoint's individuals need
        save_checkpoint(run.checkpoint, load_checkpoint(run.checkpoint, trust_legacy=True))
    if args.scheduler is not None:
        if config.get("backend") != "dask":
            raise CommandError(f"--scheduler joins a Dask cluster, but {args.run_dir} runs on the "
                               f"{config.get('backend')!r} backend; resume it without --scheduler")
        config = dict(config, scheduler=args.scheduler)
    return _search(args, args.run_dir, config)


def _existing_run(path):
    """The :class:`~deap_lossgp.search.rundir.RunDirectory` at *path*; a missing directory is an error."""
    from ..search.rundir import RunDirectory

    try:
        exists = path.exists()
    except OSError as error:
        raise CommandError(f"{str(path)[:80]}...: {error.strerror}; give the path of a run directory") from None
    if not exists:
        raise CommandError(f"{path} does not exist; give a run directory that 'deap-lossgp evolve' wrote "
                           "(runs/<YYYYmmdd-HHMMSS>-<preset>-<algorithm>-seed<seed> by default)")
    return RunDirectory(path)


def _generations_done(run):
    """How many generations of a run finished (generation 0 included), from ``logbook.csv`` (never the pickle)."""
    return len(_logbook_table(run))


def _logbook_table(run):
    """The rows of ``logbook.csv`` as strings; none when it does not exist yet."""
    import csv

    if not run.logbook.exists():
        return []
    try:
        with open_for_reading(run.logbook, "r") as stream:
            return list(csv.DictReader(stream))
    except (OSError, csv.Error, UnicodeDecodeError) as error:
        raise CommandError(f"cannot read {run.logbook} ({error}); it is rewritten at the next generation "
                           f"('deap-lossgp resume {run.path}')") from None


def _search(args, run_dir, config):
    from ..search.driver import NothingTrainedError, run_search

    try:
        result = run_search(run_dir, config, progress=not args.quiet, on_generation=_GenerationReport(args.quiet))
    except NothingTrainedError as error:
        print(_nothing_trained_message(args.command, error, run_dir, config), file=sys.stderr)
        return _NOTHING_TRAINED
    _finish(result[3], run_dir)
    return 0


class _GenerationReport:
    """Per generation of a search: redraw ``fitness.png`` and, unless *quiet*, print the new logbook rows
    above the progress bar."""

    def __init__(self, quiet):
        self.quiet = quiet
        self.printed = 0

    def __call__(self, run, logbook, halloffame):
        from tqdm.auto import tqdm

        from .plots import plot_fitness

        plot_fitness(run.plot, logbook)
        if not self.quiet:
            # A resumed run's first call shows its whole history, header included.
            logbook.buffindex = self.printed
            tqdm.write(logbook.stream)
            self.printed = len(logbook)


def _nothing_trained_message(command, error, run_dir, config):
    # What to try depends on the run's own settings, so only the relevant hints are given.
    fitness = config.get("resolved", {}).get("fitness", {})
    hints = ["a search with more generations or a larger population (deap-lossgp evolve --generations N "
             "--population N)"]
    if fitness.get("validity") == "thesis":
        hints.append("--set validity=screened, which rejects untrainable trees before training them "
                     "(this run used validity=thesis)")
    if any(task.get("label_noise") for task in fitness.get("tasks", ())):
        hints.append("less label noise in the tasks (--set tasks=...)")
    run_dir = pathlib.Path(run_dir)
    return "\n".join([
        f"deap-lossgp {command}: {error}, so no loss was exported.",
        f"  Each record's 'reason' in {run_dir / 'evaluations.jsonl'} says why it did not complete; the logbook "
        f"is in {run_dir / 'logbook.csv'}.",
        "  To try: " + "; ".join(hints) + ".",
    ])


def _finish(best, output):
    from ..gp.formula import FORMULA_LEGEND, shorten
    from ..search.halloffame import format_fitness

    print(f"best loss: {shorten(best['expression'])}")
    print(f"formula:   {shorten(best['formula'])}  ({FORMULA_LEGEND})")
    print(f"fitness:   {format_fitness(best['fitness'])} (in the search)")
    confirmed = best.get("confirmed")
    if confirmed:
        seeds = confirmed["test_difference"]["n"]
        print(f"confirmed: on {seeds} fresh seeds, held-out test accuracy minus cross-entropy's "
              f"(mean [95 % interval], paired by seed):")
        for name, task in confirmed["tasks"].items():
            print(f"  {name:<18} {_interval(task['difference'])}")
        print(f"  {'mean of tasks':<18} {_interval(confirmed['test_difference'])}")
    print(_VERDICT_LINES[best.get("verdict", "unconfirmed")].format(file=pathlib.Path(output) / "best_loss.py",
                                                                     expression=best["expression"]))
    print(f"more:      deap-lossgp show {output}  (top losses: {pathlib.Path(output) / 'hall_of_fame.csv'})")


# The last word of a search: "use it" only when the confirmed best beats cross-entropy beyond seed noise.
_VERDICT_LINES = {
    "better": "use it:    from best_loss import EvolvedLoss  (file: {file}); it beats cross-entropy on the "
              "held-out test split beyond seed noise",
    "indistinguishable": "verdict:   no loss beat cross-entropy beyond seed noise; keep cross-entropy, or try "
                         "more generations, a larger population or more confirm_seeds (best_loss.py is "
                         "written all the same: {file})",
    "worse": "verdict:   the best loss is worse than cross-entropy on the held-out test split; keep "
             "cross-entropy, or try more generations or a larger population",
    "unconfirmed": "verdict:   not confirmed (confirm_top=0 or a failed confirmation); check it before use: "
                   "deap-lossgp evaluate '{expression}' --repeats 5",
}


def _interval(summary):
    if summary["mean"] is None:
        return "did not train on every seed"
    if summary["low"] is None:
        return f"{summary['mean']:+.4f}"
    return f"{summary['mean']:+.4f} [{summary['low']:+.4f}, {summary['high']:+.4f}]"


def _untrained_statuses(run):
    """``status -> count`` when the run has evaluations but none completed training, else ``None``."""
    from ..search.rundir import count_completed, read_records

    completed, statuses = count_completed(read_records(run.records))
    return statuses if statuses and not completed else None


def _cmd_evaluate(args):
    from ..gp.losses import REFERENCE_EXPRESSIONS

    expression = REFERENCE_EXPRESSIONS.get(args.expression.strip(), args.expression)
    from ..gp.standalone import parse

    parse(expression)  # a malformed expression is an argument error, before any training
    if args.repeats < 1:
        raise CommandError(f"--repeats must be at least 1 (the number of seeds), got {args.repeats}")
    from tqdm.auto import tqdm

    from ..fitness import compare_with_ce, format_comparison
    from ..search.presets import get_preset

    overrides = _overrides(args)
    tasks = len(get_preset(args.preset, **overrides).fitness.tasks)
    with tqdm(total=args.repeats * tasks, desc="trainings", unit="training", disable=args.json,
              dynamic_ncols=True, leave=False) as bar:
        comparison = compare_with_ce(expression, repeats=args.repeats, preset=args.preset, progress=bar.update,
                                     **overrides)
    if args.json:
        print(json_dumps(comparison if args.repeats > 1 else comparison["records"][0], indent=2, default=str))
    elif args.repeats == 1:
        print(format_record(comparison["records"][0]))
        print(format_comparison(comparison).splitlines()[-1])
    else:
        print(format_comparison(comparison))


def format_record(record):
    """Format an evaluation record as a per-task table.

    :param record: a dict from :meth:`LossEvaluator.evaluate_detailed`.
    :returns: the table as text.
    """
    lines = [f"expression: {record['expression']}"]
    tasks = record.get("tasks") or {}
    header = (f"{'task':<20} {'acc':>9} {'CE acc':>9} {'own loss':>10} {'xent':>9} {'CE xent':>9} "
              f"{'improv.':>9}  stop")
    if tasks:
        lines += [header, "-" * len(header)]
    for name, task in tasks.items():
        baseline = task.get("baseline") or {}
        lines.append(
            f"{name:<20} {_num(task.get('val_accuracy')):>9} {_num(baseline.get('val_accuracy')):>9} "
            f"{_num(task.get('val_loss')):>10} {_num(task.get('val_ce')):>9} {_num(baseline.get('val_ce')):>9} "
            f"{_num(task.get('improvement')):>9}  {task.get('stop_reason', '')}"
        )
    if tasks:
        lines.append("acc, xent: validation accuracy and cross-entropy of the model trained with the loss; "
                     "CE acc, CE xent: of the model trained with cross-entropy; own loss: the loss's value; "
                     "improv.: relative gain over cross-entropy under the metric")
    wins, improvement = record["fitness"]
    lines.append(f"metric: {record.get('metric')} ({record.get('averaging')} averaging)   wins: {wins:g}   "
                 f"fitness (average improvement): {improvement:.4g}")
    if record.get("reason"):
        lines.append(f"reason: {record['reason']}")
    return "\n".join(lines)


def _num(value):
    return "-" if value is None else f"{value:.4g}"


def _cmd_export(args):
    from ..gp.export import EXPORT_FORMATS, to_source
    from ..gp.expression import to_latex

    run = _existing_run(args.run_dir)
    if args.output is not None and args.output.is_dir():
        raise CommandError(f"--output {args.output} is a directory; give a file name, e.g. {args.output / 'loss.py'}")
    if run.best.exists():
        best = run.read_best()
    else:
        run.read_config()  # a directory that is not a run is an error that says so, before any advice
        statuses = _untrained_statuses(run)
        if statuses is not None:
            _print_nothing_trained(args.command, args.run_dir, statuses)
            return _NOTHING_TRAINED
        best = _best_so_far(run, args.run_dir)
    scale = None
    if args.format in EXPORT_FORMATS or args.format == "py":
        text = to_source(best["expression"], "keras" if args.format == "py" else args.format, rescale=args.rescale)
        from ..gp.export import loss_scale

        try:
            scale = (f"{loss_scale(best['expression']):.4g} x cross-entropy's gradient at a reference prediction"
                     f"{'; the export divides by it' if args.rescale else ' (--rescale divides by it)'}")
        except ValueError as error:  # a flat loss still exports (unrescaled); it only has no scale to report
            scale = f"none ({str(error).split(';')[0]})"
    elif args.format == "latex":
        text = to_latex(best["expression"]) + "\n"
    else:
        text = json_dumps(best, indent=2) + "\n"
    if args.output:
        try:
            args.output.write_text(text)
        except OSError as error:
            raise OSError(error.errno, error.strerror, error.filename or str(args.output)) from None
        print(f"wrote {args.output}")
    else:
        sys.stdout.write(text)
    if scale is not None:  # after the file is written: a failed write stays one line
        print(f"loss scale: {scale}", file=sys.stderr)


def _print_nothing_trained(command, run_dir, statuses):
    from ..search.rundir import describe_statuses

    print(f"deap-lossgp {command}: {run_dir}: no candidate completed training ({describe_statuses(statuses)}); "
          "there is no loss to export", file=sys.stderr)


def _best_so_far(run, run_dir):
    """The first row of an unfinished run's hall of fame, as ``best.json`` would hold it, with a note on stderr."""
    from ..search.driver import resolve_config
    from ..search.halloffame import read_hall_of_fame

    rows = read_hall_of_fame(run.hall_of_fame)
    if not rows:
        raise CommandError(f"{run_dir} has no finished generation yet, so no loss to export; continue the run with "
                           f"'deap-lossgp resume {run_dir}'")
    top = rows[0]
    done, generations = _generations_done(run), resolve_config(run.read_config())[1].generations
    print(f"note: {run_dir} is unfinished ({done} of {generations + 1} generations, generation 0 included); "
          f"exported its best loss so far; 'deap-lossgp resume {run_dir}' continues the run", file=sys.stderr)
    return {"expression": top["expression"], "formula": top["formula"],
            "fitness": [float(top["wins"]), float(top["improvement"])], "size": int(top["size"]),
            "height": int(top["height"]), "finished": False}


def _cmd_show(args):
    from ..search.driver import resolve_config
    from ..search.halloffame import format_fitness, read_hall_of_fame
    from ..search.rundir import describe_statuses

    run = _existing_run(args.run_dir)
    config = run.read_config()
    done, generations = _generations_done(run), resolve_config(config)[1].generations
    print(f"run:       {args.run_dir}")
    print(f"preset:    {config['preset']}  algorithm: {config['algorithm']}  "
          f"search seed: {config.get('search_seed', config.get('seed'))}  backend: {config['backend']}")
    state = "finished" if done > generations else "running or interrupted ('deap-lossgp resume' continues it)"
    print(f"progress:  {done} of {generations + 1} generations (generation 0 included): {state}")
    rows = _logbook_table(run)
    if rows:
        columns = [*LOG_FIELDS, "wins_max", "improvement_max", "improvement_median"]
        print("".join(f"{c:>19}" for c in columns))
        for row in rows:
            print("".join(f"{_csv_cell(row.get(c)):>19}" for c in columns))
    rows = read_hall_of_fame(run.hall_of_fame)
    if rows:
        print(f"hall of fame ({len(rows)} best distinct losses so far; all columns in {run.hall_of_fame}):")
        print(_hall_of_fame_table(rows))
    if run.best.exists():
        best = run.read_best(required=("expression", "formula", "fitness"))
        _finish(best, args.run_dir)
    elif (statuses := _untrained_statuses(run)) is not None:
        print(f"best:      none: no candidate completed training ({describe_statuses(statuses)})")
    elif rows:
        print(f"best:      (run unfinished) so far {rows[0]['expression']}")
        print(f"fitness:   {format_fitness((rows[0]['wins'], rows[0]['improvement']))}")
    else:
        print("best:      (no generation finished yet)")


def _hall_of_fame_table(rows):
    """The hall of fame's rank, fitness, per-task improvements, size and formula, one line per loss."""
    tasks = [column for column in rows[0] if column.endswith(" improvement") and column != "improvement"]
    columns = ["rank", "wins", "improvement", *tasks, "size"]
    widths = [max(len(c), 8) for c in columns]
    lines = ["  ".join(f"{c:>{w}}" for c, w in zip(columns, widths)) + "  formula"]
    for row in rows:
        cells = [_csv_cell(row.get(c)) for c in columns]
        formula = row["formula"] if len(row["formula"]) <= 70 else row["formula"][:67] + "..."
        lines.append("  ".join(f"{cell:>{w}}" for cell, w in zip(cells, widths)) + f"  {formula}")
    return "\n".join(lines)


def _csv_cell(text):
    """A CSV cell shown compactly: numbers to 4 significant digits, empty as '-'."""
    if not text:
        return "-"
    try:
        return f"{float(text):.4g}"
    except ValueError:
        return text


def _cell(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def _cmd_benchmark(args):
    from .benchmark import run_benchmark

    if args.seeds < 1:
        raise CommandError(f"--seeds must be at least 1, got {args.seeds}")
    command = "deap-lossgp " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["benchmark"] else "deap-lossgp benchmark"
    if args.confirm_seeds < 2:
        raise CommandError(f"--confirm-seeds must be at least 2 (an interval needs two seeds), got {args.confirm_seeds}")
    report = run_benchmark(args.output, preset=args.preset, seeds=range(args.seeds), workers=args.workers,
                           backend=args.backend, confirm_seeds=args.confirm_seeds, command=command,
                           **_overrides(args))
    print(f"report: {report}")


_COMMANDS = {
    "evolve": _cmd_evolve,
    "resume": _cmd_resume,
    "evaluate": _cmd_evaluate,
    "export": _cmd_export,
    "show": _cmd_show,
    "benchmark": _cmd_benchmark,
}


def main(argv=None):
    """Entry point of ``deap-lossgp``.

    :param argv: the arguments (default: ``sys.argv[1:]``).
    :returns: the exit status.
    """
    from ..checkpoint import CheckpointError
    from ..search.rundir import RunLockedError

    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help, or an argument error already printed in one line
        return done.code
    try:
        if args.command in _TRAINING_COMMANDS:
            from ..fitness.runtime import quiet_tensorflow, verbose_tensorflow

            verbose_tensorflow() if args.verbose else quiet_tensorflow()
        with _one_line_warnings(args.command), _sigterm_as_interrupt():
            status = _COMMANDS[args.command](args)
    except (CommandError, CheckpointError, ValueError, RunLockedError) as error:
        print(f"deap-lossgp {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        # Our own messages (e.g. "not a run directory") name no file; the system's get the file and a fix.
        text = str(error) if error.filename is None else f"{_describe_os_error(error)}; {_retry_hint(args)}"
        if isinstance(error, SchedulerLostError) and getattr(args, "run_dir", None) is not None:
            text += f", then continue with 'deap-lossgp resume {args.run_dir}'"
        print(f"deap-lossgp {args.command}: error: {text}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        run_dir = getattr(args, "run_dir", None)
        where = f"; resume with 'deap-lossgp resume {run_dir}'" if args.command in ("evolve", "resume") else ""
        print(f"deap-lossgp {args.command}: interrupted{where}", file=sys.stderr)
        return 130
    return status or 0


def _describe_os_error(error):
    names = [name for name in (error.filename, error.filename2) if name is not None]
    what = error.strerror or str(error)
    return f"{' -> '.join(map(str, names))}: {what}" if names else what


def _retry_hint(args):
    # A run whose config.json exists continues with resume; anything else is simply run again.
    run_dir = getattr(args, "run_dir", None)
    try:
        resumable = run_dir is not None and (pathlib.Path(run_dir) / "config.json").exists()
    except OSError:  # the path itself is the problem (too long, a loop...)
        resumable = False
    if args.command in ("evolve", "resume") and resumable:
        return f"fix it (free disk space, permissions), then continue with 'deap-lossgp resume {run_dir}'"
    return "fix it (free disk space, permissions, the path), then run the command again"


@contextlib.contextmanager
def _one_line_warnings(command):
    """Show warnings (a damaged record skipped, a checkpoint fallback) as one line each."""
    def show(message, category, filename, lineno, file=None, line=None):
        print(f"deap-lossgp {command}: warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """Stop on SIGTERM the way Ctrl-C stops: workers ended, one message, status 130."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
