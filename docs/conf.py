"""Sphinx configuration of the deap_lossgp documentation.

Build with ``python -m sphinx -W --keep-going -b html docs docs/_build/html``
(warnings are errors, as in the test suite).
"""

import pathlib
import sys

# Document the package of this source tree even when it is not installed.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import deap_lossgp  # noqa: E402

project = "deap_lossgp"
author = "the deap_lossgp authors"
copyright = "the deap_lossgp authors"
release = deap_lossgp.__version__
version = ".".join(release.split(".")[:2])

extensions = ["sphinx.ext.autodoc", "sphinx.ext.viewcode"]

exclude_patterns = ["_build", "examples"]
root_doc = "index"

autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
# Signatures show the defaults as written in the source (e.g. ``__debug__``).
autodoc_preserve_defaults = True

html_theme = "alabaster"
html_theme_options = {
    "description": "Evolve loss functions with DEAP",
    "fixed_sidebar": True,
}
html_static_path = []


def _canonical_name(target):
    """Where the object named *target* is documented, if it is re-exported.

    The API reference documents every object in the module that defines it,
    while users (and docstrings) name many of them by the shorter path of a
    package that re-exports them, e.g. ``deap_lossgp.fitness.LossEvaluator``.
    """
    import importlib

    parts = target.split(".")
    if parts[0] != "deap_lossgp":
        return None
    for split in range(len(parts) - 1, 0, -1):
        module_name, (attribute, *rest) = ".".join(parts[:split]), parts[split:]
        try:
            obj = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError):
            continue
        defining = getattr(obj, "__module__", None)
        if defining and hasattr(obj, "__qualname__"):
            return ".".join([defining, obj.__qualname__, *rest])
        # Data (constants, registries): the submodule that holds the same object.
        for name, module in list(sys.modules.items()):
            if name.startswith(module_name + ".") and getattr(module, attribute, None) is obj:
                return ".".join([name, attribute, *rest])
        return None
    return None


def _resolve_reexports(app, env, node, contnode):
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"]
    if "." not in target and node.get("py:module"):
        # A short name in a package's docstring, e.g. LossEvaluator in deap_lossgp.fitness.
        target = f"{node['py:module']}.{target}"
    canonical = _canonical_name(target)
    if canonical is None or canonical == node["reftarget"]:
        return None
    return env.get_domain("py").resolve_xref(env, node["refdoc"], app.builder, node["reftype"], canonical, node,
                                             contnode)


def setup(app):
    app.connect("missing-reference", _resolve_reexports)
