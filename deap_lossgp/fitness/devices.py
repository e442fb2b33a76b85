"""One GPU per worker process: which one, and pinning a process to it.

TensorFlow takes every GPU it sees, and by default most of each GPU's
memory, in the first process that runs an operation.  With several GPUs and
one worker per GPU (``--workers`` equal to the number of GPUs, or one SCOOP
worker per GPU on each host), each worker must see its own GPU only and
grow its memory as needed.  :func:`pin_gpu` does that when a worker starts
(:func:`~deap_lossgp.fitness.runtime.worker_initializer` calls it, for the
process pool and for SCOOP): the worker claims a free slot on its host,
``0 .. GPUs - 1``, by locking a file (the lock dies with the process, so a
crashed worker frees its slot), and sets ``CUDA_VISIBLE_DEVICES`` to that
GPU before TensorFlow starts.  A process already running TensorFlow (SCOOP's
root process, which trained the baselines) computes on the first GPU, so it
claims slot 0.  Memory growth is set in every process that
trains (:func:`allow_memory_growth`).  On a machine without a GPU nothing
changes.  Importing this module does not import TensorFlow.
"""

import os
import subprocess
import sys
import tempfile
import warnings

__all__ = ["list_gpus", "gpu_environment", "claim_slot", "pin_gpu", "allow_memory_growth"]

# Lock files held by this process (one per claimed slot), kept open for its lifetime.
_held = {}


def list_gpus(environ=None):
    """The GPUs this process may use, as CUDA device ids, without starting TensorFlow.

    :param environ: the environment to read (default :data:`os.environ`).
    :returns: the ids in ``CUDA_VISIBLE_DEVICES`` when it is set, else one
              per GPU that ``nvidia-smi -L`` lists, else ``[]``.
    """
    environ = os.environ if environ is None else environ
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = [part.strip() for part in visible.split(",") if part.strip()]
        # CUDA stops at the first invalid id; "-1" is the usual way to hide every GPU.
        return [] if not ids or ids[0] == "-1" else ids
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(index) for index, line in enumerate(line for line in listing.splitlines() if line.startswith("GPU"))]


def gpu_environment(slot, gpus):
    """The environment variables that pin the worker in *slot* to one GPU.

    :param slot: the worker's index on its host (0, 1, ...).
    :param gpus: the host's GPU ids (:func:`list_gpus`).
    :returns: ``{"CUDA_VISIBLE_DEVICES": gpus[slot % len(gpus)],
              "TF_FORCE_GPU_ALLOW_GROWTH": "true"}``, or ``{}`` without GPUs.
              More workers than GPUs share them in turn.
    """
    if not gpus:
        return {}
    return {"CUDA_VISIBLE_DEVICES": str(gpus[slot % len(gpus)]), "TF_FORCE_GPU_ALLOW_GROWTH": "true"}


def claim_slot(count, directory=None, name="deap_lossgp-gpu", only=None):
    """Claim the lowest free worker slot on this host, for the life of the process.

    :param count: the number of slots (GPUs).
    :param directory: where the lock files live; default the system's temporary directory.
    :param name: the lock files' prefix (one set per user).
    :param only: claim this slot or none.
    :returns: the slot, ``0 .. count - 1``; when every slot is taken, the
              process id modulo *count* (``None`` with *only*).
    """
    import fcntl  # POSIX only, like TensorFlow's GPU builds

    directory = tempfile.gettempdir() if directory is None else directory
    for slot in range(count) if only is None else (only,):
        path = os.path.join(directory, f"{name}-{os.getuid()}-{slot}.lock")
        handle = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(handle)
            continue
        _held[path] = handle
        return slot
    return os.getpid() % count if only is None else None


def allow_memory_growth():
    """Let TensorFlow grow its GPU memory as needed instead of reserving most of it.

    Effective until TensorFlow first uses a GPU in this process.

    :returns: ``None``.
    """
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")


def pin_gpu(directory=None):
    """Pin this worker process to its own GPU (see the module's description).

    :param directory: where the slot lock files live (see :func:`claim_slot`).
    :returns: the GPU id this process now sees, or ``None`` (no GPU, or
              TensorFlow already running here, which is then left as it is).
    """
    gpus = list_gpus()
    if len(gpus) < 2:
        allow_memory_growth()
        return gpus[0] if gpus else None
    if "tensorflow" in sys.modules:
        # Too late to hide GPUs (e.g. SCOOP's root process, which trained the baselines): TensorFlow
        # computes on the first one, so take its slot and leave the others to the workers.
        if claim_slot(len(gpus), directory, only=0) is None:
            warnings.warn(f"this process runs TensorFlow on GPU {gpus[0]}, which another worker has claimed; "
                          "start one worker fewer on this host", RuntimeWarning, stacklevel=2)
        return gpus[0]
    environment = gpu_environment(claim_slot(len(gpus), directory), gpus)
    os.environ.update(environment)
    return environment["CUDA_VISIBLE_DEVICES"]
