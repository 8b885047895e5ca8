"""Image work in supervised worker processes: bounded memory and CPU per job, crashes contained.

Every decode of untrusted bytes (uploads, web previews, directory photos, import) runs here,
never in a serving thread. Each worker is a process from a forkserver that imported Pillow,
OpenCV and the imaging code once, so a worker starts warm in milliseconds and no thread ever
runs a lazy `import cv2`. A job runs under its own limits, set in the worker just before it:

- memory: `RLIMIT_AS` at the worker's current size plus the job's budget, so an allocation
  past it fails (`MemoryError`) instead of growing the process;
- CPU: a profiling timer (`ITIMER_PROF`, CPU time of the worker) of the job's seconds, whose
  SIGPROF ends a runaway decode; `RLIMIT_CPU` (whole seconds, SIGXCPU) backs it up inside the
  worker and a wall-clock deadline here backs up both.

A job over either limit, or a native crash, ends only its worker: the caller gets an
`ImageError` saying what the image would need, and a fresh worker takes the slot. Workers are
recycled after a number of jobs, or when a job left them large, so memory a decode retained
goes back to the system. Callers beyond the pool's queue get `WorkersBusy` (503 +
Retry-After) at once rather than waiting without bound.

As with any multiprocessing start method other than fork, a worker re-imports the owner's
main script as `__mp_main__`: a script that uses the pool must guard its entry point with
`if __name__ == "__main__":` (the `userphoto` command does).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import multiprocessing
import os
import resource
import select
import signal
import threading
import time
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerContext
from typing import Any, TypeVar

from .errors import NOT_THE_FILE, ImageError, ImageErrorKind, WorkersBusy, WorkersUnavailable
from .model import Limits

log = logging.getLogger("userphoto.workers")

T = TypeVar("T")

# What the forkserver imports once; every worker forked from it starts with these loaded.
PRELOAD = ["PIL.Image", "PIL.ImageCms", "cv2", "userphoto.facecrop", "userphoto.directory.photo"]
RECYCLE_AFTER = 200  # jobs per worker
RECYCLE_RSS = 192 * 1024 * 1024  # a worker left this large by a job is replaced
QUEUE_PER_WORKER = 16  # callers that may wait for a worker, per worker; more get WorkersBusy
QUEUE_WAIT = 30.0  # seconds a caller waits for a free worker before WorkersBusy
RETRY_AFTER = 2  # seconds, for the 503
NICE = 5  # workers' scheduling priority below the server's
STARTUP_SECONDS = 60.0  # a worker imports nothing (the forkserver did); this is for a loaded box

_RLIM_INFINITY = resource.RLIM_INFINITY
_PR_SET_PDEATHSIG = 1
# Signals a native decoder dies of when the bytes it reads lead it astray: the file's fault.
_DECODER_CRASHES = {signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGILL, signal.SIGFPE}


def context() -> ForkServerContext:
    """The forkserver every helper process of userphoto comes from (no threads, no sockets)."""
    ctx = multiprocessing.get_context("forkserver")
    # Workers parallelise across jobs; nested BLAS/OpenCV threads would only contend and
    # inflate each worker's address space.
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        os.environ.setdefault(name, "1")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


def die_with(pid: int) -> None:
    """End this process when process `pid` ends, a `kill -9` of it included.

    PR_SET_PDEATHSIG covers the direct parent (the forkserver, which itself ends with its
    parent); a watchdog thread on `pid` covers the process that owns the pool.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if pid == os.getpid():
        return

    def watch() -> None:
        try:
            fd = os.pidfd_open(pid)
            select.select([fd], [], [])
        except OSError:  # already gone, or no pidfd: poll
            while True:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                except PermissionError:
                    pass
                time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def _address_space() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _cpu_used() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# A worker's job limits are soft limits lowered for the job and put back after it. The
# hard limits are the ones the worker inherited (systemd LimitAS=, `ulimit -v`, prlimit) and
# are never touched: an unprivileged process cannot raise a hard limit once lowered, and a
# soft limit above the hard one is refused (EINVAL), so each job's limit is capped there.
_JOB_LIMITS = (resource.RLIMIT_AS, resource.RLIMIT_CPU)


def _lower(which: int, want: int) -> int:
    """Set the soft limit `which` to `want`, capped at the inherited hard limit; what was set."""
    _soft, hard = resource.getrlimit(which)
    value = want if hard == _RLIM_INFINITY else min(want, hard)
    resource.setrlimit(which, (value, hard))
    return value


def _limit_problems(memory: int) -> list[str]:
    """What keeps this worker from enforcing its job limits as configured, in words (empty
    when nothing does). Checked once at start, so the operator hears of it before any job."""
    problems = []
    inherited = {which: resource.getrlimit(which) for which in _JOB_LIMITS}
    try:
        granted = _lower(resource.RLIMIT_AS, _address_space() + memory) - _address_space()
        if granted < memory:
            problems.append(
                f"the inherited address-space limit (RLIMIT_AS hard "
                f"{inherited[resource.RLIMIT_AS][1] // 2**20} MB, from LimitAS= or ulimit -v) "
                f"leaves an image job {max(0, granted) // 2**20} MB of its "
                f"{memory // 2**20} MB budget"
            )
    except (OSError, ValueError) as exc:
        problems.append(f"the image workers cannot set a memory limit per job ({exc})")
    try:
        _lower(resource.RLIMIT_CPU, math.ceil(_cpu_used()) + 3600)
    except (OSError, ValueError) as exc:
        problems.append(f"the image workers cannot set a CPU limit per job ({exc})")
    for which, (soft, hard) in inherited.items():
        with contextlib.suppress(OSError, ValueError):
            resource.setrlimit(which, (soft, hard))
    return problems


def _run_job(fn: Callable[..., Any], args: tuple, kwargs: dict, memory: int, cpu: float) -> Any:
    """One job under its limits; ("ok", result), ("error", exc), ("memory", None) when the
    job went over its budget, or ("server", why) for a failure that is not the job's."""
    inherited = {which: resource.getrlimit(which)[0] for which in _JOB_LIMITS}
    try:
        granted = _lower(resource.RLIMIT_AS, _address_space() + memory) - _address_space()
        _lower(resource.RLIMIT_CPU, math.ceil(_cpu_used() + cpu) + 1)
    except (OSError, ValueError):
        granted = memory  # said at start (`_limit_problems`); the CPU timer still bounds the job
    signal.setitimer(signal.ITIMER_PROF, cpu)  # SIGPROF's default: terminate
    try:
        return ("ok", fn(*args, **kwargs))
    except MemoryError:
        if granted < memory:  # the inherited limit, not the file, left too little room
            return (
                "server",
                f"the server's memory limit left this job {max(0, granted) // 2**20} MB",
            )
        return ("memory", None)
    except Exception as exc:
        return ("error", exc)
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        for which, soft in inherited.items():
            with contextlib.suppress(OSError, ValueError):
                resource.setrlimit(which, (soft, resource.getrlimit(which)[1]))


def _serve(conn: Connection, owner: int, memory: int, cpu_seconds: float) -> None:
    """A worker's life: warm up, then run jobs one at a time under their limits."""
    die_with(owner)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the owner to handle
    # Below the serving process: when cores are short, cached GETs go first and image work
    # waits (its limit is CPU time, not wall time, so waiting refuses nothing).
    with contextlib.suppress(OSError):
        os.nice(NICE)
    from .facecrop import warm_up

    warm_up()  # the face detector's models, loaded before the first job is timed
    problems = _limit_problems(memory)
    for problem in problems:
        log.warning("image worker %s: %s", os.getpid(), problem)
    conn.send(("ready", problems))
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        fn, args, kwargs = job
        result = _run_job(fn, args, kwargs, memory, cpu_seconds)
        try:
            conn.send(result)
        except Exception as exc:  # an unpicklable result or error: say so, don't hang
            conn.send(("error", RuntimeError(f"{type(exc).__name__}: {exc}")))
        if result[0] in ("memory", "server"):
            return  # the heap may be fragmented after a failed allocation: start afresh


class _Worker:
    def __init__(self, ctx: ForkServerContext, memory: int, cpu_seconds: float):
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=_serve,
            args=(child, os.getpid(), memory, cpu_seconds),
            name="userphoto-image-worker",
            daemon=True,
        )
        try:
            self.process.start()
        except (OSError, EOFError) as exc:  # the forkserver itself is gone or cannot fork
            child.close()
            self.conn.close()
            raise WorkersUnavailable(
                f"The server could not process this image: no image worker can start ({exc}). "
                f"{NOT_THE_FILE}"
            ) from None
        child.close()
        self.jobs = 0
        self.problems: list[str] = []  # limits it cannot enforce (see `_limit_problems`)
        try:
            hello = self.conn.recv() if self.conn.poll(STARTUP_SECONDS) else None
        except (EOFError, OSError):
            hello = None
        if not (isinstance(hello, tuple) and hello[0] == "ready"):
            self.kill()
            log.error("an image worker did not start (exit code %s)", self.process.exitcode)
            raise WorkersUnavailable(
                "The server could not process this image: its image workers do not start "
                f"(exit code {self.process.exitcode}). {NOT_THE_FILE}"
            )
        self.problems = list(hello[1])

    def rss(self) -> int:
        try:
            with open(f"/proc/{self.process.pid}/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            return 0

    def stop(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.conn.send(None)
        self.conn.close()
        self.process.join(2)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(2)

    def kill(self) -> None:
        self.process.kill()
        self.process.join(5)
        self.conn.close()


class WorkerPool:
    """`size` worker processes; `run` hands one job to a free one and waits for its result.

    Thread-safe: serving threads call `run` concurrently, and at most `size` jobs run at
    once. Workers start on first need (or at `start()`), each replaced when it dies.
    """

    def __init__(
        self,
        size: int | None = None,
        *,
        memory: int = 256 * 1024 * 1024,
        cpu_seconds: float = 10.0,
        recycle_after: int = RECYCLE_AFTER,
        queue: int | None = None,
        queue_wait: float = QUEUE_WAIT,
    ):
        self.size = max(1, size or os.cpu_count() or 1)
        self.memory = memory
        self.cpu_seconds = cpu_seconds
        self.recycle_after = recycle_after
        self.max_waiting = self.size * QUEUE_PER_WORKER if queue is None else queue
        self.queue_wait = queue_wait
        self._ctx: ForkServerContext | None = None
        self._idle: list[_Worker] = []
        self._all: set[_Worker] = set()
        self._lock = threading.Lock()
        self._slots = threading.Semaphore(self.size)
        self._waiting = 0
        self._closed = False
        # For /metrics (`stats`): jobs running now, refusals by reason, workers killed.
        self._busy = 0
        self._refused: dict[str, int] = {}
        self._kills = 0
        self._problems: list[str] = []

    @property
    def closed(self) -> bool:
        """Closed: it runs no more jobs (its owner, an App, was closed)."""
        return self._closed

    @property
    def problems(self) -> list[str]:
        """Limits the workers cannot enforce as configured (for the log and /readyz)."""
        with self._lock:
            return list(self._problems)

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Start every worker now (a server does, so its first uploads find them warm)."""
        started = [self._spawn() for _ in range(self.size - len(self._all))]
        with self._lock:
            closed = self._closed
            if not closed:
                self._idle.extend(started)
        if closed:  # closed while these started
            for worker in started:
                worker.stop()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers, self._idle, self._all = list(self._all), [], set()
        for worker in workers:
            worker.stop()

    def pids(self) -> list[int]:
        with self._lock:
            return [w.process.pid for w in self._all if w.process.pid is not None]

    def _spawn(self) -> _Worker:
        if self._ctx is None:
            self._ctx = context()
        worker = _Worker(self._ctx, self.memory, self.cpu_seconds)
        with self._lock:
            if not self._closed:
                self._all.add(worker)
            new = [p for p in worker.problems if p not in self._problems]
            self._problems.extend(new)
        for problem in new:  # once per pool: the worker's own log line may go nowhere
            log.warning("image workers run degraded: %s", problem)
        return worker

    def _take(self) -> _Worker:
        with self._lock:
            if self._closed:
                raise RuntimeError("the worker pool is closed")
            if self._idle:
                return self._idle.pop()
        return self._spawn()

    def _give_back(self, worker: _Worker) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(worker)
                return
        worker.stop()

    def _retire(self, worker: _Worker, *, kill: bool) -> None:
        with self._lock:
            self._all.discard(worker)
            self._kills += kill
        worker.kill() if kill else worker.stop()

    # --- jobs ------------------------------------------------------------------------------
    def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """`fn(*args, **kwargs)` in a worker (fn and arguments must pickle)."""
        if not self._slots.acquire(blocking=False):
            with self._lock:
                if self._waiting >= self.max_waiting:
                    self._refused["queue_full"] = self._refused.get("queue_full", 0) + 1
                    raise WorkersBusy(
                        "Every image worker is busy and the queue is full; try again shortly.",
                        retry_after=RETRY_AFTER,
                    )
                self._waiting += 1
            try:
                got = self._slots.acquire(timeout=self.queue_wait)
            finally:
                with self._lock:
                    self._waiting -= 1
            if not got:
                self._count_refusal("queue_timeout")
                raise WorkersBusy(
                    f"No image worker was free for {self.queue_wait:.0f} s; try again shortly.",
                    retry_after=RETRY_AFTER,
                )
        with self._lock:
            self._busy += 1
        try:
            return self._run(fn, args, kwargs)
        finally:
            with self._lock:
                self._busy -= 1
            self._slots.release()

    # --- the operator's view ---------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """A snapshot for /metrics: size, busy, queued, refusals by reason, kills."""
        with self._lock:
            return {
                "size": self.size,
                "alive": len(self._all),
                "busy": self._busy,
                "queued": self._waiting,
                "refused": dict(self._refused),
                "kills": self._kills,
            }

    def _count_refusal(self, reason: str) -> None:
        with self._lock:
            self._refused[reason] = self._refused.get(reason, 0) + 1

    def _run(self, fn: Callable[..., T], args: tuple, kwargs: dict) -> T:
        worker = self._take()
        try:
            worker.conn.send((fn, args, kwargs))
        except (OSError, ValueError):  # died while idle: one retry on a fresh worker
            self._retire(worker, kill=True)
            worker = self._spawn()
            worker.conn.send((fn, args, kwargs))
        # The CPU limit ends a decode in the worker; this deadline is for a job that waits
        # (or a machine so loaded that CPU time lags far behind the clock).
        deadline = time.monotonic() + self.cpu_seconds * 4 + 10
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._retire(worker, kill=True)
                raise self._too_slow()
            try:
                if worker.conn.poll(min(remaining, 1.0)):
                    status, value = worker.conn.recv()
                    break
            except (EOFError, OSError):
                self._died(worker)
            if not worker.process.is_alive():
                self._died(worker)
        worker.jobs += 1
        if status == "server":
            self._retire(worker, kill=False)
            log.error("image worker could not run a job: %s", value)
            raise WorkersUnavailable(
                f"The server could not process this image: {value}. {NOT_THE_FILE}"
            )
        if status == "memory":
            self._retire(worker, kill=False)
            raise self._too_big()
        if worker.jobs >= self.recycle_after or worker.rss() > RECYCLE_RSS:
            self._retire(worker, kill=False)
        else:
            self._give_back(worker)
        if status == "error":
            raise value
        return value

    def _died(self, worker: _Worker) -> None:
        """The worker ended mid-job: say why, blaming the file only when a decoder crashed."""
        worker.process.join(5)
        code = worker.process.exitcode
        self._retire(worker, kill=True)
        if code in (-signal.SIGPROF, -signal.SIGXCPU):
            raise self._too_slow()
        log.warning("image worker %s ended mid-job (exit code %s)", worker.process.pid, code)
        if code is not None and -code in _DECODER_CRASHES:
            self._count_refusal("crashed")
            raise ImageError(
                ImageErrorKind.CRASHED,
                "The image decoder failed on this file; export it again as a baseline JPEG "
                "or a PNG and upload that.",
            )
        # Killed from outside (the OOM killer, an operator) or an exit of the worker's own:
        # nothing says the file caused it.
        raise WorkersUnavailable(
            f"The server could not process this image: an image worker ended (exit code "
            f"{code}). {NOT_THE_FILE}"
        )

    def _too_slow(self) -> ImageError:
        self._count_refusal("too_slow")
        return ImageError(
            ImageErrorKind.TOO_COSTLY,
            f"This image needs more than {self.cpu_seconds:g} s to decode; export it as a "
            "baseline JPEG (648×648 is plenty).",
        )

    def _too_big(self) -> ImageError:
        self._count_refusal("too_big")
        return ImageError(
            ImageErrorKind.TOO_COSTLY,
            f"This image needs more than {self.memory // (1024 * 1024)} MB to decode; export "
            "it as a baseline JPEG (648×648 is plenty).",
        )


def pool_for(limits: Limits, size: int | None = None, queue: int | None = None) -> WorkerPool:
    """A pool whose every job runs under `limits` (the `[limits]` job memory and CPU): the
    one way a pool is made (`App.pool`, a library caller's import, a library caller's sync)."""
    return WorkerPool(
        size, memory=limits.job_memory, cpu_seconds=limits.job_cpu_seconds, queue=queue
    )


@contextlib.contextmanager
def started_for(limits: Limits, size: int | None = None) -> Iterator[WorkerPool]:
    """A pool started for one piece of work and closed after it: for a library caller that
    has no pool running (an `App` has one: `App.pool`)."""
    pool = pool_for(limits, size)
    try:
        pool.start()
        yield pool
    finally:
        pool.close()
