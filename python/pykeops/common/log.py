"""What pykeops says it does: the "pykeops" logger (a line per kernel lookup), cache statistics and progress lines."""

import logging
import os
import sys
import threading
import time

from .engine import load_engine

logger = logging.getLogger("pykeops")
logger.addHandler(logging.NullHandler())  # silent unless set_verbose(True) or the application configures logging

# Seconds a compile or a KernelSolve runs before its progress line appears (on a terminal only); tests lower it.
PROGRESS_AFTER = 1.0
_REFRESH = 0.1  # seconds between two updates of a progress line


class _StderrHandler(logging.StreamHandler):
    """Writes to the sys.stderr of the moment (which notebooks and tests replace), as "[pyKeOps] message"."""

    def __init__(self):
        super().__init__()
        self.setFormatter(logging.Formatter("[pyKeOps] %(message)s"))

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # StreamHandler.__init__ assigns it
        pass


_handler = _StderrHandler()


def set_verbose(on):
    """On: INFO lines of the "pykeops" logger go to stderr. Off: removes that handler and keeps the logger at
    WARNING, so that an application's own logging configuration does not show them either."""
    if on:
        if _handler not in logger.handlers:
            logger.addHandler(_handler)
        logger.setLevel(logging.INFO)
    else:
        logger.removeHandler(_handler)
        logger.setLevel(logging.WARNING)


def env_verbose():
    """Whether PYKEOPS_VERBOSE asks for verbose output ("1", "true", "yes", "on")."""
    return os.environ.get("PYKEOPS_VERBOSE", "").strip().lower() in ("1", "true", "yes", "on")


_lock = threading.Lock()
_seconds = {"compiled": 0.0, "disk": 0.0}  # time spent in the lookups that compiled / read the disk


def cache_stats(log=True):
    """Kernel cache statistics of this process: the CPU engine's requests, memory_hits, disk_hits, compiled and
    memory_entries, the seconds its lookups spent compiling and reading the disk, and the same counters of the GPU
    backend under "gpu" when it exists; also logged at INFO when log is true."""
    from . import gpu

    engine = load_engine()
    stats = dict(engine.cache_stats())
    with _lock:
        stats.update(compile_seconds=round(_seconds["compiled"], 6), disk_seconds=round(_seconds["disk"], 6))
    if gpu.available():
        stats["gpu"] = dict(engine.gpu_cache_stats())
    if log:
        logger.info("kernel cache: %s", ", ".join(f"{k}={v}" for k, v in stats.items()))
    return stats


def lookup(get, formula, backend, dtype):
    """get() (an engine kernel lookup) timed, with a progress line when it runs long on a terminal and an INFO line
    saying whether the kernel was in memory, on disk or compiled. Called once per Genred and dtype (the Genred keeps
    the kernel), never on a call that found its kernel."""
    start = time.perf_counter()
    with progress(f"compiling {formula}") as line:
        line.watch()
        kernel = get()
    seconds = time.perf_counter() - start
    outcome = load_engine().last_lookup()
    if outcome in _seconds:
        with _lock:
            _seconds[outcome] += seconds
    if logger.isEnabledFor(logging.INFO):
        what = {"compiled": "compiled", "disk": "disk hit", "memory": "memory hit",
                "generated": "CUDA source generated"}.get(outcome, outcome)
        logger.info("%s kernel %s (%s): %s in %.1f ms", backend, formula, dtype, what, 1e3 * seconds,
                    extra=dict(keops_formula=formula, keops_backend=backend, keops_dtype=dtype,
                               keops_outcome=outcome, keops_seconds=seconds))
    return kernel


def progress(label):
    """A Progress line for an operation labelled `label` when stderr is a terminal, else one that does nothing."""
    return Progress(label) if _tty() else _NO_PROGRESS


def _tty(stream=None):
    stream = sys.stderr if stream is None else stream
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


class _NoProgress:
    """The progress line off stderr terminals: does nothing."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def watch(self):
        pass

    def step(self, text):
        pass


_NO_PROGRESS = _NoProgress()


class Progress:
    """A single updating line on a terminal's stderr ("<label> ... <text> 1.2 s") for an operation that has run
    longer than PROGRESS_AFTER seconds, erased when it ends. Python loops call step(text) (cheap when the line is
    not due); a call into the engine is watched by a shared background thread (watch()), which can run because the
    engine releases the GIL."""

    def __init__(self, label):
        self.label, self.stream = label, sys.stderr
        self.start = time.monotonic()
        self._next = self.start + PROGRESS_AFTER
        self._width = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _watcher.forget(self)
        with _watcher.cond:
            if self._width:
                self.stream.write("\r" + " " * self._width + "\r")
                self.stream.flush()
                self._width = 0
        return False

    def _show(self, text):
        """Writes the line (caller holds _watcher.cond)."""
        elapsed = time.monotonic() - self.start
        line = f"[pyKeOps] {self.label[:60] + '...' if len(self.label) > 63 else self.label}{text} {elapsed:.1f} s"
        self.stream.write("\r" + line.ljust(self._width))
        self.stream.flush()
        self._width = len(line)
        self._next = time.monotonic() + _REFRESH

    def step(self, text=""):
        """Shows text on the line if it is due (after PROGRESS_AFTER, then every _REFRESH seconds)."""
        if time.monotonic() >= self._next:
            with _watcher.cond:
                self._show(text)

    def watch(self):
        """Has the background thread update the line until the end of the with block."""
        _watcher.add(self)


class _Watcher:
    """One daemon thread, started on first use, that updates the progress lines of the engine calls being watched."""

    def __init__(self):
        self.cond = threading.Condition()
        self.watched = []
        self.thread = None

    def add(self, progress):
        with self.cond:
            self.watched.append(progress)
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="pykeops-progress", daemon=True)
                self.thread.start()
            self.cond.notify()

    def forget(self, progress):
        with self.cond:
            if progress in self.watched:
                self.watched.remove(progress)

    def _run(self):
        with self.cond:
            while True:
                if not self.watched:
                    self.cond.wait()
                    continue
                now = time.monotonic()
                due = min(p._next for p in self.watched)
                if now < due:
                    self.cond.wait(due - now)
                    continue
                for p in self.watched:
                    if p._next <= now:
                        p._show(" ...")


_watcher = _Watcher()
# A forked child has no watcher thread (nor lines to watch): it starts its own on first use.
os.register_at_fork(after_in_child=lambda: _watcher.__init__())
