"""Run one function over many files: the execution layer of the per-file data passes.

The catalog scan, the normalisation statistics, the signatures and the training cache each apply one
function to thousands of files (about 40,000 for the real dataset), each file independently of the
others. :func:`map_files` runs such a pass on the executor named by ``scheduler=``:

``"processes"`` (default)
    A local pool of ``workers`` processes started by ``forkserver``: the workers are forked from a clean
    server process, never from the caller, so no NetCDF/HDF5 handle (and no HDF5 library state) of the
    caller crosses a fork. Fewer than :data:`MIN_ITEMS_FOR_POOL` items, or one worker, are run in this
    process (starting a pool costs more than it saves; a pool of one process would only add its start-up).
    In this process, a crash inside the HDF5 library ends the caller instead of failing one chunk.
``"threads"``
    A pool of ``workers`` threads in this process. netCDF-C and HDF5 are not thread-safe (two threads
    reading two *different* files at once fail with "NetCDF: HDF error"), so the package's file functions
    hold :data:`NETCDF_LOCK` while they call the library and compute outside it: threads help where
    computing dominates reading.
``"synchronous"``
    One item after the other in this process, for debugging (breakpoints, full tracebacks, profilers).
an address such as ``"tcp://10.0.0.5:8786"``
    A :mod:`dask.distributed` scheduler: a ``Client`` is connected for the call and closed after it.
a ``distributed.Client``
    Used as it is and left open (e.g. ``Client(LocalCluster(n_workers=8))`` or a cluster's client).

We do not write a scheduler: local pools are :mod:`concurrent.futures`, cluster runs are
:mod:`dask.distributed`. This module only chunks the items (a task holds several files, so the per-task
overhead of a pool or of the Dask scheduler stays small next to the reading), catches per-item failures,
returns the results in input order and shows progress (a ``tqdm`` bar; with Dask also the dashboard link).
Whatever executor runs a pass, the function sees one item at a time and the results come back in input
order, so a caller that reduces them in that order gets identical figures (the tests compare them).

**Failures are reported, not fatal.** An exception raised by the function for one item is caught where it
runs and returned as a :class:`Failure` (item, exception type, message); the other items go on. A worker
that dies (a crash inside the HDF5 library, killed for memory, a lost cluster node) fails the items of
its chunk with ``crashed=True``: the file itself may be fine. What to do with failures is the caller's
decision (each pass documents its own). If a local process pool cannot start at all (a script without an
``if __name__ == "__main__":`` guard, which worker processes re-import), the items are run in this process
with a warning.

With Dask, the workers must import ``s12ls_utils`` (the same version) and see the data (and the cache
folder, for the training cache) at the same paths as the caller. ``distributed`` is imported only when a
distributed scheduler is asked for, so importing the package stays fast.

Example
-------
>>> from s12ls_utils.parallel import map_files
>>> res = map_files(len, ["a.nc", "bb.nc"], scheduler="synchronous", progress=False)
>>> res.results, res.failures
([4, 5], [])
"""

from __future__ import annotations

import logging
import math
import multiprocessing as mp
import os
import re
import sys
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, NamedTuple

from tqdm.auto import tqdm

log = logging.getLogger(__name__)

#: The local schedulers; anything else must be a dask.distributed address or ``Client``.
SCHEDULERS: tuple[str, ...] = ("processes", "threads", "synchronous")
#: Under ``"processes"``, fewer items than this are run in the calling process.
MIN_ITEMS_FOR_POOL = 16
#: Default largest number of items per task (a pass may ask for smaller tasks with ``chunk_size``).
MAX_CHUNK = 64
#: Held by the package's file functions around every netCDF4/HDF5 call (see ``"threads"`` above). Reentrant,
#: so a function holding it may call another that takes it; uncontended (free) in worker processes.
NETCDF_LOCK = threading.RLock()

#: ``tcp://host:port``, ``tls://…``, ``inproc://…`` or a bare ``host:port``.
_ADDRESS = re.compile(r"^(?:[a-z][a-z0-9+.-]*://\S+|[^\s:/]+:\d+)$")
#: Modules the forkserver imports once, so that workers start with the reading stack loaded. With the training
#: cache's module comes torch: about 3 s once per process that starts a pool, against about 3 s in each worker
#: of each cache build (two builds of the 37 train files: 6.3-6.6 s against 8.0-12.2 s, alternating runs).
_PRELOAD = ("s12ls_utils.catalog", "s12ls_utils.splits", "s12ls_utils.signatures", "s12ls_utils.datasets")


@dataclass(frozen=True)
class Failure:
    """One item that failed: the item, the exception's type name and message.

    ``crashed`` is True when the worker running the item died (or its chunk was lost) rather than the
    function raising for this item: the file itself may be fine, and a retry may succeed.
    """

    item: Any
    error: str
    message: str
    crashed: bool = False

    @property
    def reason(self) -> str:
        """``"<error>: <message>"``, or what happened to the worker for a crash."""
        if self.crashed:
            return f"worker process failed ({self.error}: {self.message})"
        return f"{self.error}: {self.message}"

    def __str__(self) -> str:
        return f"{self.item}: {self.reason}"


class Mapped(NamedTuple):
    """What :func:`map_files` returns: results in input order (``None`` where an item failed), failures."""

    results: list
    failures: list[Failure]


class FilesFailed(RuntimeError):
    """Raised by a pass for which a failed file leaves no usable result (e.g. the training cache).

    The pass runs to the end first, so the message lists every failed file, not only the first one;
    ``failures`` holds them.
    """

    def __init__(self, what: str, failures: Sequence[Failure], n_items: int, *, show: int = 10):
        self.failures = list(failures)
        lines = [f"{what}: {len(self.failures)} of {n_items} file(s) failed"]
        lines += [f"  {f}" for f in self.failures[:show]]
        if len(self.failures) > show:
            lines.append(f"  … and {len(self.failures) - show} more (see .failures)")
        super().__init__("\n".join(lines))


# --------------------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------------------
def default_workers() -> int:
    """The CPUs this process may use (respects containers and ``taskset``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _client_class():
    """``distributed.Client`` if ``distributed`` is already imported (a Client cannot exist otherwise)."""
    mod = sys.modules.get("distributed")
    return getattr(mod, "Client", None) if mod is not None else None


def _is_client(obj) -> bool:
    cls = _client_class()
    return cls is not None and isinstance(obj, cls)


def check_scheduler(scheduler) -> str | Any:
    """Return ``scheduler`` if it is valid, else raise ValueError listing the choices."""
    if isinstance(scheduler, str):
        if scheduler in SCHEDULERS or _ADDRESS.match(scheduler):
            return scheduler
    elif _is_client(scheduler):
        return scheduler
    raise ValueError(
        "scheduler must be 'processes' (local worker processes, the default), 'threads', 'synchronous' "
        "(in this process, for debugging), a dask.distributed scheduler address such as "
        f"'tcp://127.0.0.1:8786', or a distributed.Client; got {scheduler!r}"
    )


def check_workers(workers: int | None) -> int:
    """``workers`` as a positive int (default: :func:`default_workers`)."""
    if workers is None:
        return default_workers()
    if isinstance(workers, bool) or int(workers) != workers or workers < 1:
        raise ValueError(f"workers must be a whole number of at least 1, not {workers!r}")
    return int(workers)


def describe_scheduler(scheduler, workers: int | None = None) -> str:
    """A short label for logs and benchmark tables, e.g. ``processes (4 workers)`` or ``dask tcp://…``."""
    scheduler = check_scheduler(scheduler)
    if scheduler == "synchronous":
        return "synchronous"
    if scheduler in SCHEDULERS:
        return f"{scheduler} ({check_workers(workers)} workers)"
    address = scheduler if isinstance(scheduler, str) else scheduler.scheduler.address
    return f"dask {address}"


def mp_context() -> mp.context.BaseContext:
    """Worker processes start from a clean ``forkserver`` (``spawn`` where there is none), never as forks
    of the caller: the caller may hold open NetCDF/HDF5 handles (a notebook with datasets open), and a fork
    would copy them and the HDF5 library state into the workers."""
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(list(_PRELOAD))  # import the reading stack once, in the server
        return ctx
    return mp.get_context("spawn")


# --------------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------------
def _run_chunk(fn: Callable, chunk: Sequence[tuple[int, Any]]) -> list[tuple[int, bool, Any]]:
    """Task run by a worker: per item ``(index, True, result)`` or ``(index, False, (type, message))``."""
    out = []
    for i, item in chunk:
        try:
            out.append((i, True, fn(item)))
        except Exception as exc:  # one bad file: report it, go on with the others
            out.append((i, False, (type(exc).__name__, str(exc))))
    return out


def _chunks(indexed: list[tuple[int, Any]], slots: int, chunk_size: int | None) -> list[list]:
    """About four tasks per worker slot (so the load evens out), at most ``chunk_size`` items each."""
    cap = MAX_CHUNK if chunk_size is None else max(1, int(chunk_size))
    size = max(1, min(cap, math.ceil(len(indexed) / (4 * slots))))
    return [indexed[i : i + size] for i in range(0, len(indexed), size)]


class _Collector:
    """Puts task results in place and advances the progress bar."""

    def __init__(self, items: list, bar) -> None:
        self.items = items
        self.results: list = [None] * len(items)
        self.failures: dict[int, Failure] = {}
        self.bar = bar

    def take(self, part: list[tuple[int, bool, Any]]) -> None:
        for i, ok, value in part:
            if ok:
                self.results[i] = value
            else:
                self.failures[i] = Failure(self.items[i], *value)
        self.bar.update(len(part))

    def lose(self, chunk: Sequence[tuple[int, Any]], exc: BaseException) -> None:
        for i, _ in chunk:
            self.failures[i] = Failure(self.items[i], type(exc).__name__, str(exc), crashed=True)
        self.bar.update(len(chunk))

    def done(self) -> Mapped:
        return Mapped(self.results, [self.failures[i] for i in sorted(self.failures)])


def _run_local(fn, chunks: list[list], kind: str, workers: int, col: _Collector, desc: str) -> None:
    n_workers = min(workers, len(chunks))
    ex: Executor
    if kind == "processes":
        ex = ProcessPoolExecutor(max_workers=n_workers, mp_context=mp_context())
    else:
        ex = ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix=f"s12ls-{desc}")
    pending: dict = {}
    lost: list[tuple[list, BaseException]] = []
    completed = 0
    try:
        for k, chunk in enumerate(chunks):
            try:
                pending[ex.submit(_run_chunk, fn, chunk)] = chunk
            except BrokenProcessPool as exc:  # submit() refuses once the pool is broken
                lost += [(c, exc) for c in chunks[k:]]
                break
        for fut in as_completed(pending):
            try:
                part = fut.result()
            except Exception as exc:  # the worker died (BrokenProcessPool) or its result did not come back
                lost.append((pending[fut], exc))
                continue
            col.take(part)
            completed += 1
    finally:
        ex.shutdown(wait=True, cancel_futures=True)
    if not lost:
        return
    if completed == 0 and all(isinstance(e, BrokenProcessPool) for _, e in lost):
        # the workers could not even start (e.g. a script without an `if __name__ == "__main__":` guard,
        # which worker processes re-import): run here instead
        exc = lost[0][1]
        n = sum(len(c) for c, _ in lost)
        log.warning(
            "%s: worker processes failed (%s: %s); reading %d files in this process "
            "(pass scheduler='synchronous' to skip the attempt)",
            desc,
            type(exc).__name__,
            exc,
            n,
        )
        for chunk, _ in lost:
            col.take(_run_chunk(fn, chunk))
        return
    for chunk, exc in lost:  # a worker died while reading (a crash inside the HDF5 library?)
        col.lose(chunk, exc)


def _connect(scheduler) -> tuple[Any, bool]:
    """``(client, owned)``: a new Client for an address (owned: closed after the call), or the one given."""
    if not isinstance(scheduler, str):
        return scheduler, False
    import distributed

    return distributed.Client(scheduler, set_as_default=False), True


def _announce(client, desc: str, progress: bool) -> None:
    """Log (and, with a progress bar, print) where the Dask dashboard of this run is."""
    services = client.scheduler_info().get("services", {})
    where = client.dashboard_link if "dashboard" in services else "none (the scheduler runs without one)"
    log.info("%s: running on the Dask scheduler %s, dashboard %s", desc, client.scheduler.address, where)
    if progress:
        tqdm.write(f"{desc}: Dask scheduler {client.scheduler.address}, dashboard {where}", file=sys.stderr)


def _run_distributed(fn, indexed: list, client, chunk_size: int | None, col: _Collector, desc: str) -> None:
    import distributed

    slots = max(1, sum(client.nthreads().values()))
    chunks = _chunks(indexed, slots, chunk_size)
    prefix = f"s12ls-{re.sub(r'[^A-Za-z0-9]+', '-', desc)}-{uuid.uuid4().hex[:8]}"  # named on the dashboard
    futures = [
        client.submit(_run_chunk, fn, chunk, key=f"{prefix}-{k}", pure=False)
        for k, chunk in enumerate(chunks)
    ]
    try:
        by_key = {f.key: chunk for f, chunk in zip(futures, chunks, strict=True)}
        for fut in distributed.as_completed(futures, loop=client.loop):  # this client's, not a default one
            chunk = by_key[fut.key]
            if fut.status == "error":  # e.g. KilledWorker: the chunk's worker died
                col.lose(chunk, fut.exception())
            else:
                col.take(fut.result())
            fut.release()
    finally:
        client.cancel([f for f in futures if not f.done()])


def map_files(
    fn: Callable[[Any], Any],
    items: Iterable,
    *,
    scheduler="processes",
    workers: int | None = None,
    desc: str = "files",
    unit: str = "file",
    progress: bool = True,
    chunk_size: int | None = None,
) -> Mapped:
    """Apply ``fn`` to every item (typically a file path), on the executor named by ``scheduler``.

    Parameters
    ----------
    fn
        A function of one item. For processes and Dask it must be picklable: a module-level function, or a
        :func:`functools.partial` of one binding the other arguments. It opens its file itself (in the
        worker) and must not return open handles.
    items
        The items, e.g. relative paths; each is passed to ``fn`` as it is.
    scheduler
        ``"processes"`` (default), ``"threads"``, ``"synchronous"``, a dask.distributed scheduler address
        (a Client is connected for this call) or a ``distributed.Client`` (used, left open). See the
        module docstring.
    workers
        Processes or threads of a local pool (default: the CPUs this process may use). Ignored by
        ``"synchronous"`` and by Dask (the cluster has its own workers).
    desc, unit, progress
        Label and unit of the ``tqdm`` progress bar; ``progress=False`` hides it (and the dashboard link).
    chunk_size
        Largest number of items per task (default :data:`MAX_CHUNK`); tasks are smaller when that gives
        each worker about four of them.

    Returns
    -------
    Mapped
        ``results`` in the order of ``items`` (``None`` for a failed item) and ``failures``
        (:class:`Failure`, in input order). Never raises for a failing item.
    """
    scheduler = check_scheduler(scheduler)
    items = list(items)
    n_workers = check_workers(workers)
    if not items:  # no pool to start, no cluster to connect to
        return Mapped([], [])
    indexed = list(enumerate(items))
    client, owned = (None, False) if scheduler in SCHEDULERS else _connect(scheduler)
    try:
        if client is not None:
            _announce(client, desc, progress)
        with tqdm(total=len(items), desc=desc, unit=unit, disable=not progress) as bar:
            col = _Collector(items, bar)
            if client is not None:
                _run_distributed(fn, indexed, client, chunk_size, col, desc)
            elif scheduler == "synchronous" or (
                scheduler == "processes" and (len(items) < MIN_ITEMS_FOR_POOL or n_workers == 1)
            ):
                for pair in indexed:
                    col.take(_run_chunk(fn, [pair]))
            else:  # a local pool of processes or threads
                _run_local(fn, _chunks(indexed, n_workers, chunk_size), scheduler, n_workers, col, desc)
    finally:
        if owned:
            client.close()
    out = col.done()
    log.debug(
        "%s: %d items on %s, %d failed", desc, len(items), describe_scheduler(scheduler, workers), len(out[1])
    )
    return out
