"""A search on SLURM with dask-jobqueue: one single-thread Dask worker per job and GPU.

On a SLURM login node with ``pip install dask-jobqueue``, each job holds one
worker that offers one ``GPU`` resource, so every training asks for a GPU of
its own (``DaskMap(..., gpu=True)``). Elsewhere (no ``sbatch``, as on a
laptop or in CI) the same code runs on a local cluster of 2 CPU workers.
Jobs end when the client closes; the scheduler runs in this process, so
start the search on the login node (or in a job of its own).
"""

import contextlib
import shutil

from distributed import Client, LocalCluster

from deap_lossgp.search.parallel import DaskMap
from own_toolbox import toolbox
from parallel_search import search


def make_cluster():
    """A SLURM cluster of 2 GPU jobs, or a local stand-in without SLURM."""
    if shutil.which("sbatch") is None:
        return LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None), False
    from dask_jobqueue import SLURMCluster

    cluster = SLURMCluster(
        cores=4, processes=1, memory="16GB", walltime="24:00:00",
        job_extra_directives=["--gres=gpu:1"],
        # One training at a time per worker, which offers the job's GPU as a resource.
        worker_extra_args=["--nthreads", "1", "--resources", "GPU=1"],
    )
    cluster.scale(jobs=2)
    return cluster, True


if __name__ == "__main__":  # the cluster's processes import this module: keep the work here
    cluster, on_slurm = make_cluster()
    with contextlib.closing(cluster), Client(cluster) as client:
        # tf_threads: this stand-in evaluation does not train; for LossEvaluator use the job's cores (4).
        with DaskMap(client=client, workers=2, tf_threads=None, gpu=on_slurm) as dask_map:
            toolbox.register("map", dask_map)
            result = search()
    toolbox.register("map", map)
    assert result == search(), "the serial search gives the same logbook and best tree"
    print(f"{'slurm' if on_slurm else 'local'}    best: {result[0]}")
