"""Argument checks shared by every layer (one wording for one mistake), the
JSON round trip of the settings dataclasses, strict JSON, and deprecation
aliases for renamed public functions.

Each check raises :class:`ValueError` with a message that names the
argument, what it must be and what was given.

Every JSON file the package writes is strict JSON (:func:`json_dumps`): a
non-finite number, such as the worst fitness ``[0.0, -inf]``, is written as
the string ``"-inf"`` (``"inf"``, ``"nan"``), which ``float()`` and
:func:`json_loads` read back.
"""

import dataclasses
import json
import math
import os
import warnings

__all__ = ["LIMITS", "open_for_writing", "open_for_reading", "check_int", "check_probability", "check_positive", "check_identifier", "from_dict", "Settings",
           "deprecated_alias", "json_safe", "json_dumps", "json_loads"]


#: Upper bounds of the settings that size a search, checked before anything
#: is built (a typo such as ``population: 1000000000`` would otherwise build
#: and screen a billion trees); set the environment variable
#: ``DEAP_LOSSGP_NO_LIMITS=1`` to lift them.
LIMITS = {"population": 10_000, "generations": 10_000, "epochs": 10_000, "workers": 1_024, "batch_size": 1_000_000,
          "max_train_samples": 100_000_000, "hall_of_fame": 10_000, "rebreed": 10_000, "race_top": 10_000,
          "confirm_top": 10_000}


def _open_no_link(path, flags, mode, verb):
    """:func:`os.open` that refuses a symbolic link at the file's name, with an error naming the file."""
    try:
        handle = os.open(path, flags | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError as error:
        if os.path.islink(path):
            raise OSError(error.errno, f"refusing to {verb} through a symbolic link; remove the link", str(path)) \
                from None
        raise
    return os.fdopen(handle, mode, **({} if "b" in mode else {"encoding": "utf-8", "newline": ""}))


def open_for_writing(path, mode="w", append=False, flags=0):
    """Open a file to write without following a symbolic link at its name.

    A run directory or cache holding a planted link (``best.json.tmp`` ->
    somewhere else) would otherwise make a write land outside it.

    :param path: the file.
    :param mode: the mode of the returned file object (``"w"``, ``"wb"``, ``"ab"``...).
    :param append: append instead of truncating.
    :param flags: further :func:`os.open` flags (e.g. ``os.O_RDWR``).
    :returns: a file object.
    :raises OSError: naming the file, for a symbolic link or any other failure.
    """
    access = flags or os.O_WRONLY
    return _open_no_link(path, access | os.O_CREAT | (os.O_APPEND if append else 0 if flags else os.O_TRUNC),
                         mode, "write")


def open_for_reading(path, mode="rb"):
    """Open a file of a run directory or cache to read, refusing a symbolic link at its name.

    A planted link would otherwise make a command read (and, for a
    checkpoint, unpickle) a file from outside the directory.

    :param path: the file.
    :param mode: ``"rb"``, or ``"r"`` for UTF-8 text with newlines kept as written (for :mod:`csv`).
    :returns: a file object.
    :raises OSError: naming the file, for a symbolic link or any other failure.
    """
    return _open_no_link(path, os.O_RDONLY, mode, "read")


def check_int(name, value, minimum):
    """Require an integer (not a bool) of at least *minimum*, and at most
    its :data:`LIMITS` entry when it has one.

    :param name: the argument's name, for the message.
    :param value: the value to check.
    :param minimum: the smallest admitted value.
    :returns: *value*.
    :raises ValueError: otherwise.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {_short(value)}")
    limit = LIMITS.get(name)
    if limit is not None and value > limit and not os.environ.get("DEAP_LOSSGP_NO_LIMITS"):
        raise ValueError(f"{name} must be at most {limit:,}, got {_short(value)}; set DEAP_LOSSGP_NO_LIMITS=1 in the "
                         "environment if you really need more")
    return value


def _short(value):
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def check_probability(name, value):
    """Require a number (not a bool) in ``[0, 1]``.

    :param name: the argument's name, for the message.
    :param value: the value to check.
    :returns: *value*.
    :raises ValueError: otherwise.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
    return value


def check_positive(name, value, above=0.0):
    """Require a finite number (not a bool) greater than *above*.

    :param name: the argument's name, for the message.
    :param value: the value to check.
    :param above: the bound it must exceed.
    :returns: *value*.
    :raises ValueError: otherwise.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
        value > above and math.isfinite(value)
    ):
        raise ValueError(f"{name} must be a finite number > {above:g}, got {value!r}")
    return value


def check_identifier(name, value):
    """Require a Python identifier (a name generated code can define).

    :param name: the argument's name, for the message.
    :param value: the value to check.
    :returns: *value*.
    :raises ValueError: otherwise.
    """
    if not isinstance(value, str) or not value.isidentifier():
        raise ValueError(f"{name} must be a Python identifier, got {value!r}")
    return value


def from_dict(cls, data):
    """Build a dataclass from a dict, naming unknown fields.

    :param cls: the dataclass.
    :param data: its fields.
    :returns: ``cls(**data)``.
    :raises ValueError: on unknown fields (or invalid values, from ``cls``).
    """
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__} settings must be a JSON object, got {type(data).__name__}")
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s) {unknown}; valid fields: {', '.join(sorted(fields))}")
    return cls(**data)


def _plain(value):
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


class Settings:
    """Mixin of the frozen settings dataclasses: a checked :meth:`replace` and
    a JSON round trip (:meth:`to_dict` / :meth:`from_dict`), so a run stores
    its settings and is rebuilt from them."""

    def replace(self, **overrides):
        """A copy with some fields changed.

        :param overrides: field values, e.g. ``epochs=2``.
        :returns: a validated copy.
        :raises ValueError: for an unknown field or an invalid value.
        """
        fields = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise ValueError(f"unknown {type(self).__name__} field(s) {unknown}; valid: {', '.join(sorted(fields))}")
        return dataclasses.replace(self, **overrides)

    def to_dict(self):
        """The settings as a JSON-ready dict (tuples become lists).

        :returns: a dict accepted by :meth:`from_dict`.
        """
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data):
        """Rebuild settings from :meth:`to_dict`'s output.

        :param data: a dict of fields.
        :returns: an instance of the class.
        :raises ValueError: on unknown fields or invalid values.
        """
        return from_dict(cls, data)


def deprecated_alias(old, new):
    """A function named *old* that warns and calls *new*, for a renamed public function.

    :param old: the former name.
    :param new: the function that replaces it.
    :returns: the alias.
    """
    def alias(*args, **kwargs):
        warnings.warn(f"{old} is deprecated; use {new.__name__}", DeprecationWarning, stacklevel=2)
        return new(*args, **kwargs)

    alias.__name__ = alias.__qualname__ = old
    alias.__doc__ = f"Deprecated alias of :func:`{new.__name__}`."
    return alias


def json_safe(value):
    """Replace non-finite floats by the strings ``"inf"``, ``"-inf"`` and ``"nan"``.

    :param value: a JSON-ready value (dicts, lists and tuples are walked).
    :returns: a copy that strict JSON can hold; ``float()`` reads the strings back.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def json_dumps(value, **options):
    """Strict JSON text of *value* (never ``NaN`` or ``Infinity``, see :func:`json_safe`).

    :param value: a JSON-ready value.
    :param options: further :func:`json.dumps` options (``indent``, ``sort_keys``...).
    :returns: the text.
    """
    return json.dumps(json_safe(value), allow_nan=False, **options)


_NON_FINITE = ("inf", "-inf", "nan")


def _restore(value):
    if isinstance(value, str) and value in _NON_FINITE:
        return float(value)
    if isinstance(value, dict):
        return {key: _restore(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_restore(item) for item in value]
    return value


def json_loads(text):
    """Read JSON written by :func:`json_dumps`, with its non-finite numbers as floats again.

    :param text: the JSON text (``str`` or ``bytes``); the ``-Infinity`` of
                 older, non-strict files is read too.
    :returns: the value, with ``"inf"``, ``"-inf"`` and ``"nan"`` as floats.
    :raises ValueError: if the text is not JSON, or is nested too deeply to read.
    """
    try:
        return _restore(json.loads(text))
    except RecursionError:
        raise ValueError("it is nested too deeply to read") from None
