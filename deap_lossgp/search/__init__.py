"""Running a search: presets, the toolbox, map backends, run directories, the driver.

:mod:`.presets` (:class:`~.presets.SearchConfig`, :class:`~.presets.Preset`,
:func:`~.presets.get_preset`), :mod:`.toolbox` (:func:`~.toolbox.make_toolbox`),
:mod:`.parallel` (serial, process-pool and SCOOP maps), :mod:`.rundir` (what
a run leaves on disk) and :mod:`.driver` (:func:`~.driver.run_search`, the one
driver the command line and the benchmark share).
"""

__all__ = []
