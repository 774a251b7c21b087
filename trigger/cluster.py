"""The executor: work beyond one process on Dask (a LocalCluster by default, a real cluster by address).

Why Dask: tables with 2^30 addresses, their exhaustive verification and design scans are
many independent pieces of work, which is what a distributed task scheduler is for
(DESIGN.md). Workers need only the ``trigger`` package installed; everything a task needs
travels with it (firmware model dicts, address ranges), and results are merged in a fixed
order, so the outcome never depends on how many workers ran it.

``cluster()`` is the one entry point: ``with cluster() as client: ...``. The same settings
come from the command line (``--scheduler``, ``--workers``) or from ``scale:`` in a
``trigger.yml`` (``scheduler: tcp://host:port``, ``workers: N``); see ``scale_settings``.
``run_ordered`` maps a function over tasks, in this process or on a client's workers, and
gives the results back in task order with a progress bar: the callers (the table frontend's
parts, the verifier's vector sets, the scan) decide the work; this module only runs it.
It imports nothing of trigger but its errors, so every stage may use it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from trigger.errors import ConfigError, ToolError

_ADDRESS = re.compile(r"^(tcp|tls|inproc)://[^\s:/]+:\d{1,5}$")
SCALE_KEYS = ("scheduler", "workers")
CONNECT_TIMEOUT_S = 10


@dataclass(frozen=True)
class ScaleSettings:
    """Where distributed work runs: a scheduler address, or a LocalCluster of ``workers`` processes."""

    scheduler: str | None = None
    workers: int | None = None


def scale_settings(config: dict | None, where: str | Path = "trigger.yml",
                   scheduler: str | None = None, workers: int | None = None) -> ScaleSettings:
    """The ``scale:`` mapping of a trigger.yml, checked, with command-line values taking precedence."""
    section = {} if config is None else config
    if not isinstance(section, dict):
        raise ConfigError(f"{where}: scale: must be a mapping with {', '.join(SCALE_KEYS)}, got {section!r}")
    for key in section:
        if key not in SCALE_KEYS:
            raise ConfigError(f"{where}: scale.{key}: unknown key; expected one of {', '.join(SCALE_KEYS)}")
    sched = scheduler if scheduler is not None else section.get("scheduler")
    count = workers if workers is not None else section.get("workers")
    if sched is not None:
        check_address(sched, f"{where}: scale.scheduler" if scheduler is None else "--scheduler")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise ConfigError(f"{where}: scale.workers: must be a positive integer, got {count!r}")
    return ScaleSettings(sched, count)


def check_address(address, where: str = "--scheduler") -> str:
    """A scheduler address must read ``tcp://host:port`` (or tls://, inproc://)."""
    if not isinstance(address, str) or not _ADDRESS.match(address) or not 0 < int(address.rsplit(":", 1)[1]) < 65536:
        shown = repr(address) if len(repr(address)) <= 80 else repr(address)[:77] + "..."
        raise ConfigError(f"{where}: scheduler address must look like tcp://host:port, got {shown}")
    return address


def default_workers() -> int:
    """One worker process per core this process may use (at least one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def cluster(scheduler: str | None = None, workers: int | None = None):
    """Yield a ``distributed.Client``: connected to ``scheduler`` or to a new LocalCluster.

    The LocalCluster has ``workers`` single-threaded worker processes (default: one per
    core), no dashboard and warnings-only logs, and is closed on exit. A scheduler that
    cannot be reached is a one-line ToolError naming the address.
    """
    from distributed import Client, LocalCluster

    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ConfigError(f"--workers: must be a positive integer, got {workers!r}")
    with _quiet_logs():
        if scheduler is not None:
            check_address(scheduler)
            try:
                client = Client(scheduler, timeout=CONNECT_TIMEOUT_S)
            except (OSError, TimeoutError) as err:
                raise ToolError(f"--scheduler {scheduler}: cannot connect to a Dask scheduler "
                                f"({str(err).splitlines()[0] if str(err) else type(err).__name__})") from None
            try:
                yield client
            finally:
                client.close()
            return
        # no dashboard; its plain HTTP endpoint (health checks) on a free port instead of a busy 8787
        local = LocalCluster(n_workers=workers or default_workers(), threads_per_worker=1, processes=True,
                             dashboard_address=None, silence_logs=logging.WARNING,
                             scheduler_kwargs={"dashboard_address": ":0"}, host="127.0.0.1")
        try:
            with Client(local) as client:
                yield client
        finally:
            local.close()


@contextlib.contextmanager
def _quiet_logs():
    """distributed logs every connection and worker start at INFO: keep the terminal for our output."""
    names = ("distributed", "distributed.scheduler", "distributed.nanny", "distributed.worker",
             "distributed.core", "distributed.comm", "distributed.client")
    loggers = [logging.getLogger(n) for n in names]
    old = [lg.level for lg in loggers]
    for lg in loggers:
        if lg.level == logging.NOTSET or lg.level < logging.WARNING:
            lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, old):
            lg.setLevel(level)



def workers_share(client, folder: Path) -> bool:
    """True when every worker of ``client`` sees ``folder`` as the client does (a probe file in it)."""
    import uuid

    token = uuid.uuid4().hex
    name = f".probe-{token}"
    probe = Path(folder) / name
    probe.write_text(token)
    try:
        seen = client.run(_sees_probe, str(folder), name, token)
    finally:
        probe.unlink(missing_ok=True)
    return bool(seen) and all(seen.values())


def _sees_probe(folder: str, name: str, token: str) -> bool:
    """Run on every worker: does it read the client's probe file in ``folder`` (a shared filesystem)?"""
    try:
        return (Path(folder) / name).read_text() == token
    except OSError:
        return False


CLEANUP_WAIT_S = 300  # after a failure: how long the tasks in flight may take to finish


def run_ordered(fn, tasks: list, client=None, *, size=lambda task: 1, desc: str = "work", unit: str = "it",
                progress: bool = True, window: int | None = None, first_alone: bool = False,
                on_result=None, broadcast: tuple = ()):
    """``[fn(*broadcast, *task) for task in tasks]``, in task order: in this process when ``client`` is
    None, else as tasks on its workers (at most ``window`` in flight, default two per worker).

    ``size(task)`` advances the progress bar; ``on_result(index, result)`` sees each result as it comes
    (in any order) and returns what is kept (e.g. a record instead of a large array). ``first_alone``:
    the first task runs before the others are sent (it fills a cache they all use). ``broadcast``:
    large arguments shared by every task, sent to each worker once. On any failure the tasks in flight
    are let finish (so none writes after the caller's cleanup) and then cancelled."""
    import itertools

    from tqdm import tqdm

    keep = on_result or (lambda index, result: result)
    results: list = [None] * len(tasks)
    total = sum(size(t) for t in tasks)
    with tqdm(total=total, desc=desc, unit=unit, unit_scale=True, disable=not progress, leave=False) as bar:
        if client is None:
            for i, task in enumerate(tasks):
                results[i] = keep(i, fn(*broadcast, *task))
                bar.update(size(task))
            return results
        from distributed import as_completed, wait

        shared = client.scatter(list(broadcast), broadcast=True) if broadcast else []
        window = window or 2 * max(1, len(client.scheduler_info().get("workers", {})) or 1)
        submitted = {}

        def submit(i):
            future = client.submit(fn, *shared, *tasks[i], pure=False)
            submitted[future.key] = (i, future)
            return future

        pending = iter(range(len(tasks)))
        try:
            if first_alone and tasks:
                head = submit(next(pending))
                results[0] = keep(0, head.result())
                submitted.pop(head.key)
                head.release()
                bar.update(size(tasks[0]))
            running = as_completed([submit(i) for i in itertools.islice(pending, window)])
            for future in running:
                result = future.result()
                i, _ = submitted.pop(future.key)
                future.release()
                results[i] = keep(i, result)
                del result
                bar.update(size(tasks[i]))
                nxt = next(pending, None)
                if nxt is not None:
                    running.add(submit(nxt))
        except BaseException:
            futures = [f for _, f in submitted.values()]
            with contextlib.suppress(Exception):
                wait(futures, timeout=CLEANUP_WAIT_S)
            with contextlib.suppress(Exception):
                client.cancel(futures)
            raise
    return results


def worker_name() -> str:
    """Who runs this task: the Dask worker's address (and host), or this process."""
    import socket

    try:
        from distributed import get_worker

        return f"worker {get_worker().address} on {socket.gethostname()}"
    except (ImportError, ValueError):
        return f"this process on {socket.gethostname()}"
