"""Process and temp-dir bookkeeping for Orchard's black-box tests.

Role: the part of the harness (see harness.py) that makes a failing or
interrupted test leave nothing behind: every child process is started with
PR_SET_PDEATHSIG (SIGKILL) by `spawn()`/`run()`, tracked in a module registry
and killed at interpreter exit; every temp dir from `make_tempdir()` is
removed at exit too (set ORCHARD_KEEP_TMP=1 to keep them). SIGTERM (e.g.
ctest's timeout) is turned into KeyboardInterrupt so the atexit hook runs.
Also `free_port()`. Re-exported by harness.py.
"""

import atexit
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading

# ---------------------------------------------------------------- cleanup registry

_procs = set()
_tmpdirs = []
_reg_lock = threading.Lock()


def _cleanup_all():
    with _reg_lock:
        procs = list(_procs)
        dirs = list(_tmpdirs)
    for p in procs:
        if p.poll() is None:
            try:
                p.kill()
                p.wait(10)
            except Exception:
                pass
    if not os.environ.get("ORCHARD_KEEP_TMP"):
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)


atexit.register(_cleanup_all)


def _sigterm(signum, frame):
    # e.g. ctest's timeout: stop the run (unittest swallows SystemExit inside a
    # test but lets KeyboardInterrupt through) so atexit cleans up.
    raise KeyboardInterrupt(f"signal {signum}")


if threading.current_thread() is threading.main_thread():
    signal.signal(signal.SIGTERM, _sigterm)


def make_tempdir(prefix="orchard-bb-"):
    d = tempfile.mkdtemp(prefix=prefix)
    with _reg_lock:
        _tmpdirs.append(d)
    return d


def remove_tempdir(d):
    if not os.environ.get("ORCHARD_KEEP_TMP"):
        shutil.rmtree(d, ignore_errors=True)


_libc = None


def _pdeathsig():
    # Runs in the child between fork and exec: die with the test process.
    try:
        _libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


try:
    _libc = ctypes.CDLL(None, use_errno=True)
except OSError:
    _libc = None


def spawn(argv, stdout, stderr, cwd=None, env=None):
    """Popen tracked by the cleanup registry, killed if we die."""
    p = subprocess.Popen(argv, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL,
                         cwd=cwd, env=env, preexec_fn=_pdeathsig if _libc else None)
    with _reg_lock:
        _procs.add(p)
    return p


def run(argv, timeout=30, cwd=None):
    """Run a short command; returns CompletedProcess (text, both streams)."""
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=timeout, cwd=cwd, stdin=subprocess.DEVNULL,
                          preexec_fn=_pdeathsig if _libc else None)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
