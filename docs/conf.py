"""Sphinx configuration of the deap_lossgp documentation.

Build with ``python -m sphinx -W --keep-going -b html docs docs/_build/html``
(warnings are errors, as in the test suite).
"""

import os
import sys

# Document the package of this source tree even when it is not installed.
sys.path.insert(0, os.path.abspath(".."))

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
