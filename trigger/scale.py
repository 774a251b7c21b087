"""Work beyond one process on Dask: a LocalCluster by default, a real cluster by address.

Why Dask: tables with 2^30 addresses, their exhaustive verification and design scans are
many independent pieces of work, which is what a distributed task scheduler is for
(DESIGN.md). Workers need only the ``trigger`` package installed; everything a task needs
travels with it (firmware model dicts, address ranges), and results are merged in a fixed
order, so the outcome never depends on how many workers ran it.

``cluster()`` is the one entry point: ``with cluster() as client: ...``. The same settings
come from the command line (``--scheduler``, ``--workers``) or from ``scale:`` in a
``trigger.yml`` (``scheduler: tcp://host:port``, ``workers: N``); see ``scale_settings``.
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
        raise ConfigError(f"{where}: scheduler address must look like tcp://host:port, got {address!r}")
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


# ---------------------------------------------------------------------------------------------------------
# Tables in parts

PART_WORDS = 1 << 22  # addresses per task: 8 MB of 16-bit words, a few seconds of work
CLEANUP_WAIT_S = 300  # after a failure: how long the parts in flight may take to finish before the cleanup


@dataclass
class PartedTable:
    """A table evaluated part by part: per-part hashes, and the words (assembled, or in part files)."""

    parts: list[dict]  # {"file", "start", "words", "sha256", "min", "max", "saturated"} in address order
    part_words: int
    dtype: str  # numpy dtype string of the part files ("<u2" or "<u4")
    words: object  # the whole table as one array, or None when the parts went to files
    model_sha256: str  # sha256 of the parts' float64 hashes, in address order
    table_sha256: str  # sha256 of the parts' word hashes, in address order
    saturated: int
    seconds: float

    def digest_text(self) -> str:
        return "sha256 of the concatenated per-part sha256 hex digests, parts in address order"


def part_file(index: int) -> str:
    return f"part_{index:05d}.bin"


def write_atomically(path: Path, data) -> None:
    """Write ``data`` (bytes or an array) to ``path`` through a temporary name in the same folder, then
    rename it: a reader never sees half a part, and a failure leaves no part file behind."""
    import uuid

    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data if isinstance(data, bytes) else memoryview(data).cast("B"))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_part(layout, regressor, target: str, fmt, index: int, start: int, count: int, folder: str) -> dict:
    """One task: evaluate a part and write it into ``folder`` (the bundle's, on a filesystem the workers
    share); only its record travels back, never its words. The folder is made by the client: a worker
    that does not see it is on another filesystem, and refuses rather than writing where nobody looks."""
    import socket

    from trigger.frontends.lut.table import evaluate_part

    folder = Path(folder)
    if not folder.is_dir():
        raise ToolError(f"worker on {socket.gethostname()} does not see the table folder {folder}: "
                        f"it must be on a filesystem shared with the client")
    part = evaluate_part(layout, regressor, target, fmt, index, start, count)
    write_atomically(folder / part_file(index), part.words)
    return _part_record(part)


def _part_record(part) -> dict:
    return {"index": part.index, "start": part.start, "words": int(len(part.words)), "sha256": part.sha256,
            "float_sha256": part.float_sha256, "min": part.lo, "max": part.hi, "saturated": part.saturated,
            "bytes": int(part.words.nbytes)}


def _sees_probe(folder: str, name: str, token: str) -> bool:
    """Run on every worker: does it read the client's probe file in ``folder`` (a shared filesystem)?"""
    try:
        return (Path(folder) / name).read_text() == token
    except OSError:
        return False


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


def table_in_parts(client, layout, regressor, target: str, fmt, part_words: int = PART_WORDS,
                   folder: Path | None = None, progress: bool = True) -> PartedTable:
    """Evaluate every address of a table as tasks of ``part_words`` addresses on ``client``'s workers.

    With ``folder`` (the bundle's: ``BuildOptions.work_dir``), each worker writes its parts there itself
    (``part_NNNNN.bin``, raw little-endian words, under a temporary name renamed when whole) and returns
    only the part's size and hashes, so neither the workers nor this process ever hold more than a part
    or two. When a worker does not see ``folder`` (a cluster without a filesystem shared with this
    machine), the words travel back and this process writes them instead, one part at a time (said on
    stderr). Without ``folder`` the parts are assembled into one array (a table that fits in block RAM).
    At most two tasks per worker are in flight. Results are placed by address, so the bytes and every
    hash are the same for any number of workers. On any failure no part file is left in ``folder``."""
    import hashlib
    import itertools
    import sys
    import time

    import numpy as np
    from distributed import as_completed, wait
    from tqdm import tqdm

    from trigger.errors import BundleError
    from trigger.frontends.lut.table import evaluate_part, part_dtype

    t0 = time.perf_counter()
    depth = 1 << layout.bits
    part_words = min(int(part_words), depth)
    if part_words & (part_words - 1):
        raise ConfigError(f"table part size must be a power of two, got {part_words}")
    dtype = part_dtype(fmt)
    words = None if folder is not None else np.empty(depth, dtype=dtype)
    if folder is not None:
        Path(folder).mkdir(parents=True, exist_ok=True)
    on_workers = folder is not None and workers_share(client, Path(folder))
    if folder is not None and not on_workers:
        print(f"table: the workers do not see {folder} (no shared filesystem): the parts travel through this "
              f"process, which writes them", file=sys.stderr, flush=True)
    starts = list(range(0, depth, part_words))
    shared = client.scatter([layout, regressor], broadcast=True)
    window = 2 * max(1, len(client.scheduler_info().get("workers", {})) or 1)
    meta: list[dict | None] = [None] * len(starts)
    part_floats: list[str | None] = [None] * len(starts)
    tag = f"{depth}-{id(meta)}"

    submitted = []

    def submit(i):
        if on_workers:
            future = client.submit(write_part, shared[0], shared[1], target, fmt, i, starts[i], part_words,
                                   str(folder), key=f"trigger-table-write-{i}-{tag}", pure=False)
        else:
            future = client.submit(evaluate_part, shared[0], shared[1], target, fmt, i, starts[i], part_words,
                                   key=f"trigger-table-part-{i}-{tag}", pure=False)
        submitted.append(future)
        return future

    pending = iter(range(len(starts)))
    running = as_completed([submit(i) for i in itertools.islice(pending, window)])
    try:
        with tqdm(total=depth, desc="table", unit="addr", unit_scale=True, disable=not progress, leave=False) as bar:
            for future in running:
                result = future.result()
                future.release()
                submitted.remove(future)
                if on_workers:
                    record = result
                    path = Path(folder) / part_file(record["index"])
                    size = path.stat().st_size if path.exists() else None
                    if size != record["bytes"]:
                        raise BundleError(f"{path}: a worker wrote {record['bytes']} bytes, this machine sees "
                                          f"{'no file' if size is None else f'{size} bytes'}: is {folder} on a "
                                          f"filesystem shared with the workers?")
                else:
                    record = _part_record(result)
                    if folder is not None:
                        write_atomically(Path(folder) / part_file(result.index), result.words)
                    else:
                        words[result.start:result.start + len(result.words)] = result.words
                    del result
                meta[record["index"]] = {"file": part_file(record["index"]), "start": record["start"],
                                         "words": record["words"], "sha256": record["sha256"], "min": record["min"],
                                         "max": record["max"], "saturated": record["saturated"]}
                part_floats[record["index"]] = record["float_sha256"]
                bar.update(record["words"])
                nxt = next(pending, None)
                if nxt is not None:
                    running.add(submit(nxt))
    except BaseException:
        # the tasks in flight (two per worker at most) are let finish, so none writes a part after the cleanup
        with contextlib.suppress(Exception):
            wait(submitted, timeout=CLEANUP_WAIT_S)
        client.cancel(submitted)
        if folder is not None:  # the caller removes the folder too; this leaves it as it was
            for i in range(len(starts)):
                with contextlib.suppress(OSError):
                    (Path(folder) / part_file(i)).unlink(missing_ok=True)
        raise
    combine = lambda hexes: hashlib.sha256("".join(hexes).encode()).hexdigest()  # noqa: E731
    return PartedTable(meta, part_words, dtype, words, combine(part_floats), combine(m["sha256"] for m in meta),
                       sum(m["saturated"] for m in meta), time.perf_counter() - t0)


# ---------------------------------------------------------------------------------------------------------
# Exhaustive verification in parallel

RANGE_WORDS = 1 << 20  # addresses per verification task (also the external-memory model's window)


def enumerated_tensor(model) -> tuple[int, str] | None:
    """(k, label) of the first one-element unsigned tensor (k = 0: the input, k: output of op k-1) that
    every op before it can map back to raw inputs (``Op.preimage``): a table's address."""
    import numpy as np

    tensors = [("input", model.input)] + [(f"output of op {op.name!r}", op.output) for op in model.ops]
    for k, (label, t) in enumerate(tensors):
        if t.n == 1 and not t.formats[0].signed and t.formats[0].fractional == 0:
            return k, label
        if k < len(model.ops) and model.ops[k].preimage(np.zeros((0, model.ops[k].output.n), np.int64)) is None:
            return None
    return None


def range_inputs(model, k: int, start: int, stop: int):
    """Raw input vectors reaching values start..stop-1 of tensor k, one each, in order."""
    import numpy as np

    x = np.arange(start, stop, dtype=np.int64).reshape(-1, 1)
    for op in reversed(model.ops[:k]):
        x = op.preimage(x)
    return np.asarray(x, dtype=np.int64)


def _work_dir(bundle: Path, manifest: dict) -> Path:
    """One folder per worker process and bundle: its compiled C simulation is used by every range it checks."""
    import hashlib
    import tempfile

    tag = hashlib.sha256(f"{Path(bundle).resolve()} {manifest.get('model_sha256')}".encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"trigger-verify-{tag}-{os.getpid()}"


def _shared_csim(bundle: Path, manifest: dict, work: Path, fetch: bool) -> bool:
    """The compiled C simulation shared by the worker processes of one machine (a 2^24-word table's
    initialiser takes g++ minutes): fetch it into ``work`` if there, else publish ``work``'s. True when
    this process should publish after compiling."""
    import shutil
    import tempfile

    top = (manifest.get("hls") or {}).get("top")
    if not top:
        return False
    tag = _work_dir(bundle, manifest).name.rsplit("-", 1)[0]
    store = Path(tempfile.gettempdir()) / f"{tag}-csim"
    names = (f"{top}_csim", f"{top}_csim.stamp")
    if fetch:
        work.mkdir(parents=True, exist_ok=True)
        if all((store / n).exists() for n in names) and not (work / names[0]).exists():
            for n in names:
                shutil.copy2(store / n, work / n)
            return False
        return not (work / names[0]).exists()
    if all((work / n).exists() for n in names) and not (store / names[1]).exists():
        tmp = Path(tempfile.mkdtemp(prefix=f"{tag}-csim-", dir=store.parent))
        for n in names:
            shutil.copy2(work / n, tmp / n)
        try:
            tmp.rename(store)
        except OSError:  # another process published first
            shutil.rmtree(tmp, ignore_errors=True)
    return False


def verify_part(bundle: str, start: int | None, stop: int | None, simulator: str = "verilator") -> dict:
    """One task: addresses [start, stop) (or, with start None, the stored vectors) through the emulator, the
    C simulation and the RTL simulation; mismatch counts and, per comparison, the first mismatching row."""
    import shutil
    import time
    import uuid

    import numpy as np

    from trigger.backends.hls import run_csim
    from trigger.bundle import load_manifest
    from trigger.ir.model import FirmwareModel, emulate
    from trigger.rtlsim import simulate
    from trigger.verify import COMPARISONS, mismatching_rows

    t0 = time.perf_counter()
    bundle = Path(bundle)
    manifest = load_manifest(bundle)
    model = FirmwareModel.load(bundle)
    stored = start is None
    if stored:
        inputs = np.load(bundle / "vectors" / "inputs.npy", allow_pickle=False)
        expected = np.load(bundle / "vectors" / "outputs.npy", allow_pickle=False)
    else:
        k, _ = enumerated_tensor(model)
        inputs = range_inputs(model, k, start, stop)
    emu = emulate(model, inputs).outputs
    outputs = {"emulator": emu}
    work = _work_dir(bundle, manifest)
    run = work / uuid.uuid4().hex
    rtl = manifest["rtl"]
    simulation = rtl.get("simulation")
    timings = {}
    try:
        witnesses = not (stored and simulation)  # external memory: stored vectors span the whole table
        if witnesses:
            shared = _shared_csim(bundle, manifest, work, fetch=True)
            csim_out, csim_times = run_csim(bundle, manifest, model, inputs, work)
            if shared:
                _shared_csim(bundle, manifest, work, fetch=False)
            timings.update(csim_times)
            sources = [bundle / s for s in rtl["sources"]]
            data_files = [bundle / f for f in rtl.get("data_files", [])]
            top = rtl["top"]
            if simulation:  # the memory-interface top with its memory model holding this range's window
                lookup = model.ops[-1]
                run.mkdir(parents=True)
                depth = 1 << lookup.address_bits
                window = np.arange(start, min(depth, start + int(simulation["window_words"])))
                from trigger.vectors import write_mem

                image, base = run / simulation["memory_image"], run / simulation["memory_base"]
                write_mem(image, lookup.read(window).reshape(-1, 1), [lookup.output.formats[0].width])
                base.write_text(f"{start:016x}\n")
                sources += [bundle / s for s in simulation["extra_sources"]]
                data_files += [image, base]
                top = simulation["top"]
            sim = simulate(sources, top, model.input.to_bits(inputs), model.input.widths, model.output.widths,
                           simulator=simulator, build_dir=run / "sim", data_files=data_files,
                           max_latency=int(manifest["latency_cycles"]) + 8)
            outputs["csim"] = csim_out
            outputs["rtl"] = model.output.from_bits(sim.outputs)
            timings.update({"rtl_build_s": sim.build_seconds, "rtl_sim_s": sim.seconds,
                            "rtl_sim_cpu_s": sim.run_cpu_seconds})
            latency = {"latency_cycles": int(sim.latency_cycles), "ii": int(sim.ii),
                       "spurious": int(sim.timing.get("spurious", 0))}
        else:
            latency = None
    finally:
        if not os.environ.get("TRIGGER_KEEP_WORK"):
            shutil.rmtree(run, ignore_errors=True)
    pairs = {"emulator_vs_csim": ("emulator", "csim"), "emulator_vs_rtl": ("emulator", "rtl"),
             "csim_vs_rtl": ("csim", "rtl")}
    if stored:
        outputs["stored"] = expected
        pairs["emulator_vs_stored"] = ("emulator", "stored")
    counts, first = {}, {}
    for name in COMPARISONS:
        if name not in pairs or pairs[name][1] not in outputs:
            continue
        a, b = pairs[name]
        rows = mismatching_rows(outputs[a], outputs[b])
        counts[name] = int(rows.size)
        if rows.size:
            r = int(rows[0])
            first[name] = {"row": r, "input": inputs[r].tolist(),
                           **{w: (out[r].tolist() if r < len(out) else None) for w, out in outputs.items()}}
    return {"start": start, "stop": stop, "vectors": int(len(inputs)), "mismatches": counts, "first": first,
            "latency": latency, "seconds": time.perf_counter() - t0,
            "timings": {k: round(float(v), 3) for k, v in timings.items()}}


def _forget_work(bundle: str, manifest: dict) -> None:
    import shutil
    import tempfile

    work = _work_dir(Path(bundle), manifest)
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(Path(tempfile.gettempdir()) / f"{work.name.rsplit('-', 1)[0]}-csim", ignore_errors=True)


def verify_distributed(bundle, client, simulator: str = "verilator", range_words: int = RANGE_WORDS,
                       addresses: tuple[int, int] | None = None, progress: bool = True) -> dict:
    """Verify a bundle with its address space split into ranges checked on ``client``'s workers.

    Every address of the enumerated tensor (a table's address; ``addresses`` = (start, stop) for a
    part of it) becomes one input vector; each task checks ``range_words`` of them emulator vs C
    simulation vs RTL, and the stored vectors are one more task. Counts are summed, the first
    mismatch is the lowest vector (stored vectors first, then addresses), as ``trigger verify``
    reports it, with its op-by-op trace. Workers read the bundle from the same path (a shared file
    system on a real cluster). Writes and returns ``reports/verify.json``."""
    import time

    import numpy as np
    from distributed import as_completed
    from tqdm import tqdm

    from trigger.bundle import changed_files, load_manifest, write_json
    from trigger.errors import BundleError
    from trigger.ir.model import FirmwareModel, emulate
    from trigger.rtlsim import SIMULATORS
    from trigger.verify import COMPARISONS

    t0 = time.perf_counter()
    bundle = Path(bundle).resolve()
    manifest = load_manifest(bundle)
    if simulator not in SIMULATORS:
        raise ConfigError(f"unknown simulator {simulator!r}, expected one of {', '.join(SIMULATORS)}")
    tampered = changed_files(bundle, manifest)
    if tampered:
        raise BundleError(f"{bundle}: files changed since the build: {', '.join(tampered[:3])}; rebuild it")
    model = FirmwareModel.load(bundle)
    found = enumerated_tensor(model)
    if found is None:
        raise ConfigError(f"{bundle}: no one-element tensor to split into ranges (distributed verification "
                          f"is for tables); use `trigger verify` without --scheduler/--workers")
    k, label = found
    bits = ([model.input] + [op.output for op in model.ops])[k].formats[0].width
    depth = 1 << bits
    lo, hi = addresses if addresses is not None else (0, depth)
    if not 0 <= lo < hi <= depth:
        raise ConfigError(f"address range [{lo}, {hi}) is outside the {bits}-bit {label}")
    simulation = manifest["rtl"].get("simulation")
    range_words = int(range_words)
    if simulation:
        range_words = min(range_words, int(simulation["window_words"]))
    stored_n = int(len(np.load(bundle / "vectors" / "inputs.npy", mmap_mode="r", allow_pickle=False)))
    tasks = [(None, None)] + [(s, min(hi, s + range_words)) for s in range(lo, hi, range_words)]
    total = stored_n + (hi - lo)
    if progress:
        where = client.scheduler.address if hasattr(client, "scheduler") else "the cluster"
        print(f"verify {manifest['name']}: {hi - lo} addresses of the {label} in {len(tasks) - 1} ranges "
              f"+ {stored_n} stored vectors on {len(client.scheduler_info()['workers'])} workers ({where})",
              flush=True)
    submit = lambda t: client.submit(verify_part, str(bundle), t[0], t[1], simulator, pure=False)  # noqa: E731
    results = []
    with tqdm(total=total, desc="verify", unit="vec", unit_scale=True, disable=not progress, leave=False) as bar:
        # the first range alone: its worker compiles the RTL simulator into the shared cache for the others
        head = submit(tasks[1]).result()
        results.append(head)
        bar.update(head["vectors"])
        for future in as_completed([submit(t) for t in [tasks[0], *tasks[2:]]]):
            part = future.result()
            future.release()
            results.append(part)
            bar.update(part["vectors"])
    client.run(_forget_work, str(bundle), manifest)
    results.sort(key=lambda r: -1 if r["start"] is None else r["start"])

    offset = lambda r: 0 if r["start"] is None else stored_n + r["start"] - lo  # noqa: E731
    mismatches, first = {}, None
    for name in COMPARISONS:
        counted = [r for r in results if name in r["mismatches"]]
        if not counted:
            continue
        mismatches[name] = sum(r["mismatches"][name] for r in counted)
        hit = next((r for r in counted if name in r["first"]), None)
        if hit is not None and first is None:
            f = hit["first"][name]
            x = np.asarray([f["input"]], dtype=np.int64)
            trace = emulate(model, x, trace=True).trace
            first = {"comparison": name, "vector": int(offset(hit) + f["row"]), "input": f["input"],
                     **{w: v for w, v in f.items() if w not in ("row", "input")},
                     "emulator_trace": {op.name: np.asarray(t)[0].tolist() for op, t in zip(model.ops, trace)}}
    library = _library_comparison(bundle, manifest, model, mismatches, progress)
    expected = int(manifest["latency_cycles"])
    latencies = [r["latency"] for r in results if r["latency"]]
    mismatches["latency_vs_manifest"] = int(any(t["latency_cycles"] != expected or t["ii"] != 1 for t in latencies))
    spurious = sum(t["spurious"] for t in latencies)
    sum_of = lambda key: round(sum(r["timings"].get(key, 0.0) for r in results), 3)  # noqa: E731
    seconds = time.perf_counter() - t0
    exhaustive = (lo, hi) == (0, depth)
    result = {
        "kind": manifest["kind"], "name": manifest["name"], "simulator": simulator,
        "vectors": int(total), "stored_vectors": stored_n,
        "cover": {"tensor": label, "values": int(hi - lo)}, "exhaustive": exhaustive,
        "mismatches": mismatches, "first_mismatch": first,
        "latency_cycles": int(latencies[0]["latency_cycles"]) if latencies else None,
        "latency_cycles_expected": expected, "ii": int(latencies[0]["ii"]) if latencies else None,
        "spurious_outputs": int(spurious), "overflows": {},
        "timings": {"wall_s": round(seconds, 3), "csim_s": sum_of("csim_s"), "csim_build_s": sum_of("csim_build_s"),
                    "rtl_sim_s": sum_of("rtl_sim_s"), "rtl_sim_cpu_s": sum_of("rtl_sim_cpu_s"),
                    "rtl_build_s": sum_of("rtl_build_s")},
        "rtl_vectors_per_s": round(total / max(seconds, 1e-9), 1),
        "source_model": None,
        "distributed": {"workers": len(client.scheduler_info()["workers"]), "ranges": len(tasks) - 1,
                        "range_words": range_words, "addresses": [lo, hi],
                        "stored_vectors_3way": not simulation,
                        "task_seconds": [round(r["seconds"], 2) for r in results]},
    }
    result["library"] = library
    result["pass"] = all(v == 0 for v in mismatches.values()) and spurious == 0 and bool(latencies)
    write_json(bundle / "reports" / "verify.json", result)
    return result


def _library_comparison(bundle: Path, manifest: dict, model, mismatches: dict, progress: bool) -> dict:
    """The emulator library (trigger.verify.library_outputs, reading the table's memory image) on the stored
    vectors, in this process: ``library_vs_emulator`` in ``mismatches``; returns verify.json's "library"."""
    import tempfile

    import numpy as np

    from trigger.ir.model import emulate
    from trigger.verify import library_outputs, mismatching_rows

    stored_in = np.load(bundle / "vectors" / "inputs.npy", allow_pickle=False)
    with tempfile.TemporaryDirectory(prefix="trigger-verify-library-") as work:
        out, _, note = library_outputs(bundle, manifest, model, stored_in, Path(work))
    if out is None:
        if progress:
            print(f"verify {manifest['name']}: {note}", flush=True)
        return {"skipped": note}
    mismatches["library_vs_emulator"] = int(mismatching_rows(emulate(model, stored_in).outputs, out).size)
    return {"library": manifest["emulator"]["library"], "vectors": int(len(stored_in)),
            "mismatches": mismatches["library_vs_emulator"]}
