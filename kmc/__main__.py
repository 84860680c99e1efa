"""``python -m kmc``: the command line (kmc.cli).

The workers a study will use are started first (kmc.workers), so their imports overlap this
process's own; nothing below this line has imported numpy yet (kmc/__init__ is lazy)."""
import atexit
import os
import sys

from . import workers

workers.stamp("command start")
_n = workers.workers_for_command(sys.argv[1:])
if _n:
    workers.prestart(_n, warm_up="kmc.studies.parallel:warm_worker")
try:
    from .cli import main

    workers.stamp("cli imported")
    code = main()
finally:
    workers.discard_prestarted()  # unused (e.g. bad input): ended now, not after their imports
# Every file is written and closed: run the exit handlers, flush, and skip the interpreter's
# teardown of numpy, scipy, Numba and matplotlib (about 0.5 s of a 10 s quick study).
workers.stamp("command done")
atexit._run_exitfuncs()
sys.stdout.flush()
sys.stderr.flush()
os._exit(code)
