"""The table in parts: every address evaluated as fixed-size parts, here or on Dask workers.

A part is ``2**address.part_bits`` addresses (a size fixed by the config, never by the number of
workers), evaluated by ``table.evaluate_part`` wherever it runs; results are placed by address,
so the words and every hash are the same for any number of workers. The regressor's forward pass
uses no BLAS and ``from_target`` no vectorised libm (``regressor``), so a worker's threads, BLAS
kernel or CPU features do not change a float; as a last guard this process re-evaluates a sample
of every part a worker returns and refuses, naming the worker, when a float or a word differs.
Execution is ``trigger.cluster.run_ordered`` (this process, or a client's workers).
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trigger.cluster import run_ordered, worker_name, workers_share
from trigger.errors import BundleError, ConfigError, ToolError
from trigger.frontends.lut.regressor import from_target
from trigger.frontends.lut.table import PART_WORDS, evaluate_part, part_dtype

SAMPLE_ADDRESSES = 64  # addresses of each part re-evaluated by the client


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


def sample_offsets(count: int) -> np.ndarray:
    """The offsets in a part that the client checks: spread over the part, the same for every run."""
    return np.unique(np.linspace(0, count - 1, min(count, SAMPLE_ADDRESSES)).astype(np.int64))


def write_part(layout, regressor, target: str, fmt, index: int, start: int, count: int,
               folder: str | None = None) -> dict:
    """One task: evaluate a part; with ``folder`` (the bundle's, on a filesystem the workers share)
    write it there and send back only its record, else send the words too. The record carries the
    sampled floats and words the client checks, and who computed them. A worker that does not see
    ``folder`` refuses rather than writing where nobody looks."""
    import socket

    if folder is not None and not Path(folder).is_dir():
        raise ToolError(f"worker on {socket.gethostname()} does not see the table folder {folder}: "
                        f"it must be on a filesystem shared with the client")
    part = evaluate_part(layout, regressor, target, fmt, index, start, count)
    if folder is not None:
        write_atomically(Path(folder) / part_file(index), part.words)
    at = sample_offsets(len(part.words))
    floats = regressor.predict(layout.regressor_inputs(layout.bins_of(start + at)))
    record = {"index": part.index, "start": part.start, "words": int(len(part.words)), "sha256": part.sha256,
              "float_sha256": part.float_sha256, "min": part.lo, "max": part.hi, "saturated": part.saturated,
              "bytes": int(part.words.nbytes), "worker": worker_name(),
              "sample": {"floats": np.asarray(floats, "<f8").tobytes().hex(), "words": part.words[at].tolist()}}
    if folder is None:
        record["data"] = part.words
    return record


def check_sample(record: dict, layout, regressor, target: str, fmt) -> None:
    """The client's guard: the sampled addresses of a part evaluated here must give the worker's floats and
    words bit for bit; otherwise the worker's numeric environment differs and its table is refused."""
    at = record["start"] + sample_offsets(record["words"])
    floats = np.frombuffer(bytes.fromhex(record["sample"]["floats"]), "<f8")
    mine_floats = np.asarray(regressor.predict(layout.regressor_inputs(layout.bins_of(at))), "<f8")
    mine_words = fmt.to_bits(fmt.quantize(from_target(mine_floats, target))).astype(np.int64)
    differ = np.flatnonzero((floats.view("<u8") != mine_floats.view("<u8"))
                            | (np.asarray(record["sample"]["words"], dtype=np.int64) != mine_words))
    if differ.size:
        i = int(differ[0])
        raise ToolError(f"table part {record['index']}: {record['worker']} computed address {int(at[i])} as "
                        f"{floats[i]!r} (word {record['sample']['words'][i]}), this machine {mine_floats[i]!r} "
                        f"(word {int(mine_words[i])}): its numeric environment differs; the table is not written")


def table_in_parts(client, layout, regressor, target: str, fmt, part_words: int = PART_WORDS,
                   folder: Path | None = None, progress: bool = True) -> PartedTable:
    """Evaluate every address of a table as parts of ``part_words`` addresses, on ``client``'s workers
    (None: in this process).

    With ``folder`` (external memory: the bundle's), each part becomes ``part_NNNNN.bin`` (raw
    little-endian words, written under a temporary name renamed when whole): by the worker itself when it
    sees ``folder``, else by this process as the words come back (said on stderr), so no process holds
    more than a part or two. Without ``folder`` the parts are assembled into one array. On any failure no
    part file is left in ``folder``."""
    t0 = time.perf_counter()
    depth = 1 << layout.bits
    part_words = min(int(part_words), depth)
    if part_words & (part_words - 1):
        raise ConfigError(f"table part size must be a power of two, got {part_words}")
    dtype = part_dtype(fmt)
    words = None if folder is not None else np.empty(depth, dtype=dtype)
    if folder is not None:
        Path(folder).mkdir(parents=True, exist_ok=True)
    workers_write = folder is not None and (client is None or workers_share(client, Path(folder)))
    if folder is not None and not workers_write:
        print(f"table: the workers do not see {folder} (no shared filesystem): the parts travel through this "
              f"process, which writes them", file=sys.stderr, flush=True)
    starts = list(range(0, depth, part_words))
    tasks = [(fmt, i, s, part_words, str(folder) if workers_write else None) for i, s in enumerate(starts)]

    def keep(index: int, record: dict) -> dict:
        if client is not None:
            check_sample(record, layout, regressor, target, fmt)
        data = record.pop("data", None)
        if folder is not None and data is not None:
            write_atomically(Path(folder) / part_file(index), data)
        elif data is not None:
            words[record["start"]:record["start"] + len(data)] = data
        elif folder is not None:
            path = Path(folder) / part_file(index)
            size = path.stat().st_size if path.exists() else None
            if size != record["bytes"]:
                raise BundleError(f"{path}: {record['worker']} wrote {record['bytes']} bytes, this machine sees "
                                  f"{'no file' if size is None else f'{size} bytes'}: is {folder} on a "
                                  f"filesystem shared with the workers?")
        return record

    try:
        records = run_ordered(write_part, tasks, client, size=lambda t: t[3], desc="table", unit="addr",
                              progress=progress, on_result=keep, broadcast=(layout, regressor, target))
    except BaseException:
        if folder is not None:  # the caller removes the folder too; this leaves it as it was
            for i in range(len(starts)):
                (Path(folder) / part_file(i)).unlink(missing_ok=True)
        raise
    meta = [{"file": part_file(r["index"]), "start": r["start"], "words": r["words"], "sha256": r["sha256"],
             "min": r["min"], "max": r["max"], "saturated": r["saturated"]} for r in records]
    combine = lambda hexes: hashlib.sha256("".join(hexes).encode()).hexdigest()  # noqa: E731
    return PartedTable(meta, part_words, dtype, words, combine(r["float_sha256"] for r in records),
                       combine(m["sha256"] for m in meta), sum(m["saturated"] for m in meta),
                       time.perf_counter() - t0)
