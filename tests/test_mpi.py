"""Training under mpiexec: the same model as local workers, portable checkpoints, clean failures."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from charrnn import checkpoint
from charrnn.launcher import launched_by_mpi

from conftest import CORPORA, one_line_error, run_cmd

PANTRY = CORPORA / "pantry.txt"
MPIEXEC = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
try:
    import mpi4py  # noqa: F401

    HAVE_MPI = MPIEXEC is not None
except ImportError:
    HAVE_MPI = False
needs_mpi = pytest.mark.skipif(not HAVE_MPI, reason="mpi4py and mpiexec are not installed (pip install '.[mpi]')")
OPTS = ["--hidden", "24", "--batch", "16", "--seq-len", "16", "--cell", "gru", "--dropout", "0.2", "--seed", "5"]


def _without_launcher_env():
    return {k: v for k, v in os.environ.items() if not launched_by_mpi({k: v})}


def mpi_train(n, *args, timeout=120):
    cmd = [MPIEXEC, "-n", str(n), sys.executable, "-m", "charrnn", "train", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, timeout=timeout, env=_without_launcher_env())


def test_the_launcher_is_read_from_the_environment():
    assert not launched_by_mpi({}) and not launched_by_mpi({"PATH": "/bin"})
    assert launched_by_mpi({"PMI_RANK": "0"}) and launched_by_mpi({"OMPI_COMM_WORLD_RANK": "1"})


def test_plain_train_never_imports_mpi4py(tmp_path):
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "charrnn", "train", str(PANTRY), "--steps", "2",
                        "--hidden", "8", "-q", "-o", str(tmp_path / "m.npz")],
                       capture_output=True, text=True, env=_without_launcher_env(), timeout=120)
    assert r.returncode == 0, r.stderr
    assert re.search(r"\|\s+charrnn\.trainer\s*$", r.stderr, re.M)  # the import log is there ...
    assert "mpi4py" not in r.stderr  # ... and mpi4py is not in it


def test_a_missing_extra_is_one_clear_line(tmp_path):
    """Started as if by a launcher, with mpi4py unimportable."""
    fake = tmp_path / "fake"
    (fake / "mpi4py").mkdir(parents=True)
    (fake / "mpi4py" / "__init__.py").write_text("raise ImportError('No module named mpi4py')\n")
    env = {"PMI_RANK": "0", "PMI_SIZE": "1", "PYTHONPATH": os.pathsep.join([str(fake), os.environ.get("PYTHONPATH", "")])}
    r = run_cmd(["train", PANTRY, "--steps", "2", "-o", tmp_path / "m.npz"], env=env)
    assert r.returncode == 1
    line = one_line_error(r.stderr.decode())
    assert "mpi4py is not installed" in line and "pip install 'charrnn[mpi]'" in line
    assert not (tmp_path / "m.npz").exists()


@needs_mpi
def test_two_ranks_train_the_model_two_workers_train(tmp_path):
    r = mpi_train(2, PANTRY, *OPTS, "--steps", "20", "-o", tmp_path / "mpi.npz", "--json", "-q")
    assert r.returncode == 0, r.stderr.decode()
    metrics = json.loads(r.stdout)  # one JSON object: only rank 0 prints
    assert metrics["workers"] == 2 and metrics["steps"] == 20
    local = run_cmd(["train", PANTRY, *OPTS, "--steps", "20", "--workers", "2", "-q", "-o", tmp_path / "w.npz"])
    assert local.returncode == 0, local.stderr.decode()
    a, b = checkpoint.load(str(tmp_path / "mpi.npz")), checkpoint.load(str(tmp_path / "w.npz"))
    for k in a.params:
        np.testing.assert_allclose(a.params[k], b.params[k], rtol=1e-5, atol=1e-7, err_msg=k)
    assert a.rng.bit_generator.state == b.rng.bit_generator.state
    assert not list(tmp_path.glob("*.tmp*"))


@needs_mpi
def test_a_budget_under_mpi_refits_its_regularisation_once_on_every_rank(tmp_path):
    out = tmp_path / "b.npz"
    r = mpi_train(2, CORPORA / "home.txt", "--time", "3s", "--eval-every", "5", "-o", out)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stderr.decode().count("in its --time") == 1  # decided together, said by rank 0
    assert checkpoint.load(str(out)).train_config.refit == []


@needs_mpi
def test_checkpoints_move_between_mpi_and_one_machine(tmp_path):
    out = tmp_path / "m.npz"
    assert mpi_train(2, PANTRY, *OPTS, "--steps", "10", "-q", "-o", out).returncode == 0
    r = run_cmd(["train", PANTRY, "--resume", "--steps", "20", "-q", "-o", out])
    assert r.returncode == 0, r.stderr.decode()
    assert checkpoint.load(str(out)).step == 20
    r = mpi_train(2, PANTRY, "--resume", "--steps", "30", "-q", "-o", out)
    assert r.returncode == 0, r.stderr.decode()
    assert checkpoint.load(str(out)).step == 30


@needs_mpi
def test_bad_input_under_mpi_is_one_line_from_rank_0(tmp_path):
    r = mpi_train(2, tmp_path / "missing.txt", "--steps", "2", "-o", tmp_path / "m.npz")
    assert r.returncode == 1  # every rank knew: no MPI_Abort
    ours = [l for l in r.stderr.decode().splitlines() if l.startswith("charrnn: error:")]
    assert len(ours) == 1 and "missing.txt" in ours[0]


def _start_mpi_training(out):
    """mpiexec -n 2 charrnn train (long), returned once it has saved; its stdout and stderr come as one pipe."""
    cmd = [MPIEXEC, "-n", "2", sys.executable, "-m", "charrnn", "train", str(PANTRY), "--hidden", "48",
           "--steps", "100000", "--eval-every", "5", "-q", "-o", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=_without_launcher_env())
    deadline = time.time() + 60
    while time.time() < deadline and not out.exists():
        time.sleep(0.1)
    assert out.exists(), "training never saved"
    return proc


@needs_mpi
def test_ctrl_c_on_the_launcher_saves_and_exits(tmp_path):
    out = tmp_path / "m.npz"
    proc = _start_mpi_training(out)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)
    assert proc.returncode == 130, proc.stdout.read().decode()
    assert checkpoint.load(str(out)).step > 0


@needs_mpi
def test_a_rank_that_dies_ends_the_job(tmp_path):
    out = tmp_path / "m.npz"
    proc = _start_mpi_training(out)
    ranks = [int(p) for p in os.listdir("/proc") if p.isdigit() and _is_rank(int(p), out)]
    assert len(ranks) == 2
    os.kill(max(ranks), signal.SIGKILL)
    proc.wait(timeout=30)  # no hang
    assert proc.returncode != 0
    said = proc.stdout.read().decode()
    # Whoever notices first says it: the launcher (which rank died, and how), or rank 0 (its Allreduce failed).
    # When the peer vanishes while MPICH is copying from its memory (process_vm_readv), MPICH aborts rank 0
    # itself, whatever the error handler says; the job still ends, and the last save is intact.
    assert "signal 9" in said or "charrnn: error: another MPI rank stopped" in said or \
        ("Abort(" in said and "process_vm_readv failed" in said), said
    checkpoint.load(str(out))  # the last save is intact


@needs_mpi
def test_a_collective_that_fails_is_one_line_and_keeps_the_last_good_state(tmp_path):
    """What rank 0 does when another rank dies mid-step and MPI reports it before the launcher does."""
    out = tmp_path / "m.npz"
    script = tmp_path / "broken.py"
    script.write_text(
        "import sys\n"
        "from mpi4py import MPI\n"
        "from charrnn import mpi\n"
        "from charrnn.cli import main\n"
        "class Broken:  # COMM_WORLD whose reduction fails, as it does when a peer has died\n"
        "    def __getattr__(self, name):\n"
        "        return getattr(MPI.COMM_WORLD, name)\n"
        "    def Allreduce(self, *args, **kwargs):\n"
        "        raise MPI.Exception(MPI.ERR_OTHER)\n"
        "mpi.join().comm = Broken()\n"
        "sys.argv = ['charrnn', *sys.argv[1:]]\n"
        "main()\n")
    r = subprocess.run([MPIEXEC, "-n", "1", sys.executable, str(script), "train", str(PANTRY), *OPTS,
                        "--steps", "5", "-q", "-o", str(out)], capture_output=True, text=True, timeout=60,
                       env=_without_launcher_env())
    assert r.returncode == 1
    line = one_line_error(r.stderr)
    assert line.startswith("charrnn: error: another MPI rank stopped, so the job cannot go on (MPI: ")
    assert f"saved the last good state (step 0) to {out}" in line
    assert checkpoint.load(str(out)).step == 0


def _is_rank(pid, out):
    """Whether ``pid`` is a charrnn rank writing ``out`` (not mpiexec, which has the same arguments)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().split(b"\0")
    except OSError:
        return False
    return args[0] == sys.executable.encode() and str(out).encode() in args


@needs_mpi
def test_align_gives_every_rank_rank_0s_arrays(tmp_path):
    script = tmp_path / "align.py"
    script.write_text(
        "import numpy as np\n"
        "from charrnn.mpi import join\n"
        "team = join()\n"
        "arrays = {'w': np.full((2, 3), float(team.rank + 1), np.float32), 't': np.array(team.rank + 5)}\n"
        "team.align(arrays)\n"
        "with open(f'{__file__}.{team.rank}', 'w') as f:\n"  # one file per rank: shared stdout interleaves
        "    print(arrays['w'].sum(), int(arrays['t']), file=f)\n")
    r = subprocess.run([MPIEXEC, "-n", "2", sys.executable, str(script)], capture_output=True, text=True,
                       timeout=60, env=_without_launcher_env())
    assert r.returncode == 0, r.stderr
    seen = [(tmp_path / f"align.py.{rank}").read_text() for rank in (0, 1)]
    assert seen == ["6.0 5\n", "6.0 5\n"]  # rank 1 had 12.0 and 6
