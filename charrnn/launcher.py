"""Whether an MPI launcher started this process: read from the environment, before NumPy loads.

Kept free of NumPy and mpi4py so that the command line can ask it first and
a plain ``charrnn`` run never imports mpi4py (see charrnn.mpi).
"""
from __future__ import annotations

import os

RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK")  # set by MPICH/Hydra, Open MPI, PMIx launchers


def launched_by_mpi(environ=os.environ) -> bool:
    """Whether an MPI launcher (mpiexec, mpirun, srun) started this process."""
    return any(v in environ for v in RANK_VARIABLES)


def quiet_blas_threads(environ=os.environ) -> None:
    """Under an MPI launcher, one BLAS thread per rank unless the user said otherwise (call before NumPy loads)."""
    if launched_by_mpi(environ):
        for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            environ.setdefault(name, "1")
