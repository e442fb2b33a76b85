"""The same search on a Dask cluster: here a local one of 2 workers.

``DaskMap()`` starts a local cluster when it is first used and stops it when
closed. To join a cluster of your own, pass its scheduler,
``DaskMap(scheduler="tls://scheduler-host:8786")`` (or a scheduler file), or
a client, ``DaskMap(client=client)``; see docs/parallel.rst. The logbook and
the best tree are those of the serial run.
"""

from deap_lossgp.search.parallel import DaskMap, get_map
from own_toolbox import toolbox
from parallel_search import search

if __name__ == "__main__":  # the cluster's processes import this module: keep the work here
    with get_map("serial") as serial:
        toolbox.register("map", serial)
        expected = search()
    # tf_threads=None: this stand-in evaluation does not train, so workers need no TensorFlow.
    with DaskMap(workers=2, tf_threads=None) as dask_map:
        toolbox.register("map", dask_map)
        result = search()
    print(f"dask     best: {result[0]} (trainings rerun after a lost worker: {dask_map.reruns})")
    assert result == expected
