"""kmc.workers: which commands start their workers early, and that the early pool is the one
the study takes (with the coupled run already imported in it)."""
import os
import subprocess
import sys
import time

import pytest

from kmc import workers

WARM_UP = "kmc.studies.parallel:warm_worker"


@pytest.mark.parametrize("argv, expected", [
    (["pulse_vs_dc"], "cores"),
    (["pulse_vs_dc", "--workers", "3"], 3),
    (["lithiophilic", "--workers=2", "--full"], 2),
    (["pulse_vs_dc", "--workers", "1"], 0),
    (["pulse_vs_dc", "--workers", "two"], 0),  # the parser says what is wrong; nothing started
    (["pulse_vs_dc", "--help"], 0),
    (["validate", "--scheduler", "tcp://host:8786"], 0),
    (["run", "--set", "host.nx=8"], 0),
    (["config"], 0),
    ([], 0),
    (["--version"], 0),
])
def test_only_commands_that_use_a_local_pool_start_one(argv, expected):
    cores = os.cpu_count() or 1
    want = (cores if cores >= 2 else 0) if expected == "cores" else expected
    assert workers.workers_for_command(argv) == want


def test_the_study_takes_the_prestarted_pool_with_the_coupled_run_imported():
    workers.prestart(1, warm_up=WARM_UP)
    started = workers._prestarted
    try:
        pool = workers.process_pool(1)
        assert pool is started
        loaded = pool.submit(eval, "'kmc.coupling.simulation' in __import__('sys').modules").result(timeout=120)
        assert loaded  # the warm-up ran in the worker before this job
        assert workers._prestarted is None  # taken: a second pool is a new one
        pool.shutdown()
    finally:
        workers.discard_prestarted()


def test_a_larger_request_replaces_the_prestarted_pool():
    workers.prestart(1, warm_up=WARM_UP)
    first = workers._prestarted
    second = workers.process_pool(2)
    try:
        assert second is not first and second._max_workers == 2
    finally:
        second.shutdown()
        workers.discard_prestarted()


def test_bad_input_from_the_command_line_ends_the_early_workers_and_writes_nothing(tmp_path):
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "kmc", "pulse_vs_dc", "--set", "host.nx=-3", "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "host.nx" in done.stderr and "Traceback" not in done.stderr
    assert not out.exists()


def test_end_pool_ends_the_workers_at_once_without_their_teardown():
    import signal

    pool = workers.process_pool(2)
    assert pool.submit(pow, 2, 10).result(timeout=120) == 1024
    procs = list(pool._processes.values())
    workers.end_pool(pool)
    # the pool's manager thread reaps them too: a join that loses that race returns with
    # exitcode None (waitpid's ECHILD), so poll exitcode, which reads the reaped code
    deadline = time.monotonic() + 30
    while any(p.exitcode is None for p in procs) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [p.exitcode for p in procs] == [-signal.SIGTERM] * len(procs)  # ended, not exited after a teardown


def test_compiled_kernels_are_looked_for_where_numba_caches_them(tmp_path):
    """With NUMBA_CACHE_DIR set, the kernels cached beside the source do not count: an empty
    cache there is a first run (both workers had compiled both halves: 57 CPU-s each)."""
    from kmc.studies.parallel import compile_kmc_kernels, kernels_compiled

    compile_kmc_kernels()  # cached in the default place, if it was not
    assert kernels_compiled()
    probe = "from kmc.studies.parallel import kernels_compiled as k; print(k())"
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert done.stdout.strip() == "False", done.stderr
