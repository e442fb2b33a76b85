"""What a person runs and reads: the ``deap-lossgp`` command (:mod:`.cli`),
the benchmark against NGL (:mod:`.benchmark`) and its report (:mod:`.report`).
The only code that prints or names the command.
"""

__all__ = []
