#!/usr/bin/env python
"""Benchmark of tables and their verification on Dask (trigger.cluster, trigger.frontends.lut.parts); writes benchmarks/scale.json + .md.

Stages (all by default; ``--only`` picks some, and results of earlier runs of other stages are kept):
  table26  a 2^26-address table built as a bundle with 1 and then 2 LocalCluster workers: every file
           byte-identical (sha256), and the speed ratio of the table stage (timed separately, same parts)
  verify24 a 2^24-address table in block RAM, verified exhaustively 3-way (emulator, g++ C simulation,
           Verilator) in address ranges on a 2-worker cluster: time and mismatch counts
  emtf     a 30-bit, 9-bit-word table (the CMS EMTF pT table's size) built on 2 workers: wall and CPU
           time, peak memory of every process, bundle size, and one address range of it verified
           through the external-memory interface and its memory model
Wall times on a shared machine are upper bounds: CPU seconds are recorded too.

usage: scripts/bench_scale.py [--only table26 verify24 emtf] [--out benchmarks/scale.json] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from trigger.bundle import build_bundle  # noqa: E402
from trigger.frontends import BuildOptions  # noqa: E402
from trigger.cluster import cluster  # noqa: E402
from trigger.toolchain import hash_files  # noqa: E402
from trigger.verify import verify_bundle  # noqa: E402

STAGES = ("table26", "verify24", "emtf")
MUON = {"source": "muon", "n_train": 200000, "n_test": 100000}
TABLE26_DATA = {"source": "muon", "n_train": 50000, "n_test": 20000}  # the table is what is measured, not physics
WORD = {"format": "ufixed<9,8,RND_CONV,SAT>"}  # EMTF's 9-bit pT word: 0.5 GeV steps, saturating
ORDER = ["quality", "eta", "dphi34", "dphi23", "dphi12"]


def config(name: str, bits: list[int], memory: str, hidden: list[int], data: dict = MUON) -> dict:
    """A muon pT table: feature bits for dphi12, dphi23, dphi34, eta, quality."""
    names = ["dphi12", "dphi23", "dphi34", "eta", "quality"]
    binning = ["quantile", "quantile", "quantile", "linear", "linear"]
    return {"kind": "lut", "name": name, "seed": 1, "data": data,
            "features": [{"name": n, "bits": b, "binning": k} for n, b, k in zip(names, bits, binning)],
            "address": {"order": ORDER, "memory": memory},
            "model": {"type": "mlp", "hidden": hidden, "epochs": 4}, "output": WORD}


def write_config(folder: Path, cfg: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "trigger.yml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return folder


def own_cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def process_usage() -> dict:
    """This process's peak resident memory (MB) and CPU seconds (run on each worker by client.run). A spawned
    worker's ru_maxrss starts at its parent's resident size when it was started (Linux keeps the high-water
    mark across fork + exec), so MemorySampler's /proc figures are the ones to read for workers."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return {"peak_mb": round(r.ru_maxrss / 1024, 1), "cpu_s": round(r.ru_utime + r.ru_stime, 2)}


def cluster_usage(client) -> dict:
    workers = client.run(process_usage)
    return {"workers": {f"worker {i}": v for i, (_, v) in enumerate(sorted(workers.items()))},
            "scheduler": client.run_on_scheduler(process_usage)}


def proc_status(pid: int) -> dict:
    """Resident memory of a process now, in MB: all of it, its anonymous part (heap: what the process holds)
    and its file-backed part (memory-mapped files, e.g. a table's parts read through np.memmap: page cache
    the kernel can drop); and VmHWM, the peak of all of it since the process started."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024
    except OSError:
        pass
    return out


class MemorySampler:
    """Samples the resident memory of this process (client and, in a LocalCluster, scheduler) and of the
    workers every ``every`` seconds in a thread: the peak of each process's anonymous memory is what
    it really held (ru_maxrss/VmHWM also count mapped file pages)."""

    def __init__(self, client=None, every: float = 0.2):
        import threading

        self.pids = {"main": os.getpid()}
        if client is not None:
            for i, (_, pid) in enumerate(sorted(client.run(os.getpid).items())):
                self.pids[f"worker {i}"] = pid
        self.peak = {name: {} for name in self.pids}
        self.every = every
        try:  # this process's high-water mark restarts here (Linux: "5" resets VmHWM), not at its start
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.every)

    def sample(self):
        for name, pid in self.pids.items():
            for key, mb in proc_status(pid).items():
                self.peak[name][key] = max(self.peak[name].get(key, 0.0), mb)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.sample()

    def report(self) -> dict:
        """Per process: peak resident MB (VmHWM), peak anonymous MB and peak file-backed MB (sampled)."""
        return {name: {"peak_rss_mb": round(p.get("VmHWM", p.get("VmRSS", 0.0)), 1),
                       "peak_anon_mb": round(p.get("RssAnon", 0.0), 1), "peak_file_mb": round(p.get("RssFile", 0.0), 1)}
                for name, p in self.peak.items()}


def size_mb(folder: Path) -> float:
    return round(sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6, 1)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def stage_table26(work: Path) -> dict:
    """2^26 addresses: bundles built with 1 and with 2 workers, compared file by file; the table stage
    (trigger.frontends.lut.parts.table_in_parts, called by the LUT frontend) timed inside each build."""
    import trigger.frontends.lut.parts as scale

    src = write_config(work / "t26", config("table26", [9, 7, 4, 4, 2], "auto", [32, 32], TABLE26_DATA))
    out = {"addresses": 1 << 26, "builds": {}, "table_stage": {}}
    digests, stage = {}, {}
    timed = scale.table_in_parts

    def timing(client, *args, **kwargs):
        before = client.run(process_usage)
        parted = timed(client, *args, **kwargs)
        after = client.run(process_usage)
        stage.update(wall_s=round(parted.seconds, 2), addresses_per_s=round((1 << 26) / parted.seconds),
                     worker_cpu_s=round(sum(after[k]["cpu_s"] - before[k]["cpu_s"] for k in after), 2),
                     table_sha256=parted.table_sha256)
        return parted

    scale.table_in_parts = timing
    try:
        for workers in (1, 2):
            log(f"table26: bundle with {workers} worker(s)")
            t0, c0 = time.perf_counter(), own_cpu()
            with cluster(workers=workers) as client:
                with MemorySampler(client) as memory:
                    bundle = build_bundle(src, work / f"t26_{workers}w",
                                          BuildOptions(scheduler=client.scheduler.address), progress=True)
                usage = cluster_usage(client)
            out["builds"][f"{workers}w"] = {"wall_s": round(time.perf_counter() - t0, 2),
                                            "main_cpu_s": round(own_cpu() - c0, 2), **usage,
                                            "memory": memory.report(), "bundle_mb": size_mb(bundle)}
            out["table_stage"][f"{workers}w"] = dict(stage)
            digests[workers] = hash_files(bundle)
            shutil.rmtree(bundle, ignore_errors=True)
    finally:
        scale.table_in_parts = timed
    differ = sorted(k for k in set(digests[1]) | set(digests[2]) if digests[1].get(k) != digests[2].get(k))
    out["files"] = len(digests[1])
    out["identical_bytes"] = not differ
    out["differing_files"] = differ[:10]
    out["manifest_sha256"] = digests[1].get("manifest.json")
    one, two = out["table_stage"]["1w"], out["table_stage"]["2w"]
    out["table_stage"]["speedup_2w_over_1w"] = round(one["wall_s"] / two["wall_s"], 2)
    return out


def stage_verify24(work: Path) -> dict:
    """2^24 addresses in block RAM, every one verified 3-way on a 2-worker cluster."""
    src = write_config(work / "v24", config("verify24", [8, 6, 4, 4, 2], "bram", [32, 32], TABLE26_DATA))
    log("verify24: build (2 workers)")
    t0, c0 = time.perf_counter(), own_cpu()
    with cluster(workers=2) as client:
        bundle = build_bundle(src, work / "v24_bundle", BuildOptions(scheduler=client.scheduler.address))
    build = {"wall_s": round(time.perf_counter() - t0, 2), "main_cpu_s": round(own_cpu() - c0, 2)}
    log("verify24: exhaustive 3-way verification on 2 workers")
    t0, c0 = time.perf_counter(), own_cpu()
    with cluster(workers=2) as client:
        result = verify_bundle(bundle, client=client)
        usage = cluster_usage(client)
    out = {"addresses": 1 << 24, "build": build, "verify_wall_s": round(time.perf_counter() - t0, 2),
           "verify_main_cpu_s": round(own_cpu() - c0, 2), **usage,
           "vectors": result["vectors"], "mismatches": result["mismatches"], "pass": result["pass"],
           "latency_cycles": result["latency_cycles"], "timings": result["timings"],
           "distributed": {"workers": result["timings"].get("workers"), "ranges": result["timings"]["sets"] - 1}}
    shutil.rmtree(work / "v24_bundle", ignore_errors=True)
    return out


def stage_emtf(work: Path, keep: Path | None) -> dict:
    """30-bit address, 9-bit words: the table goes to external memory, in 2^22-word parts."""
    src = write_config(work / "emtf", config("emtf_pt_lut", [10, 8, 5, 5, 2], "auto", [16, 16]))
    dest = (keep or work) / "emtf_bundle"
    shutil.rmtree(dest, ignore_errors=True)
    log("emtf: build of the 2^30-address table on 2 workers")
    t0, c0 = time.perf_counter(), own_cpu()
    with cluster(workers=2) as client:
        with MemorySampler(client) as memory:
            bundle = build_bundle(src, dest, BuildOptions(scheduler=client.scheduler.address))
        usage = cluster_usage(client)
    wall = time.perf_counter() - t0
    manifest = json.loads((bundle / "manifest.json").read_text())
    parts = manifest["table"]["parts"]
    out = {"addresses": 1 << 30, "word_bits": 9, "wall_s": round(wall, 1), "main_cpu_s": round(own_cpu() - c0, 1),
           "main_peak_mb": memory.report()["main"]["peak_rss_mb"], "memory": memory.report(), **usage,
           "bundle_mb": size_mb(bundle), "memory_image_mb": size_mb(bundle / "memory"), "parts": len(parts["files"]),
           "part_words": parts["part_words"], "table_sha256": manifest["table"]["table_sha256"],
           "latency_cycles": manifest["latency_cycles"], "hex_mem_equivalent_mb": round((1 << 30) * 4 / 1e6, 1)}
    log("emtf: one 2^20-address range verified through the memory interface (2 workers)")
    t0 = time.perf_counter()
    with cluster(workers=2) as client:
        result = verify_bundle(bundle, client=client, addresses=(0, 1 << 20))
    out["range_verify"] = {"addresses": [0, 1 << 20], "wall_s": round(time.perf_counter() - t0, 1),
                           "mismatches": result["mismatches"], "pass": result["pass"]}
    if keep is None:
        shutil.rmtree(dest, ignore_errors=True)
    return out


def memory_table(memory: dict | None, what: str) -> list[str]:
    """Peak memory per process of a build (MemorySampler.report) as markdown lines."""
    if not memory:
        return []
    lines = [f"Peak resident memory per process during {what} (VmHWM, and RssAnon / RssFile sampled every 0.2 s "
             "from /proc; anonymous = what the process allocated, file-backed = mapped files: the shared libraries, "
             "TensorFlow's ~250 MB in the client, and any part files mapped while read):", "",
             "| process | peak RSS MB | peak anonymous MB | peak file-backed MB |", "|---|---|---|---|"]
    for name, m in memory.items():
        label = "client (+ scheduler)" if name == "main" else name
        lines.append(f"| {label} | {m['peak_rss_mb']} | {m['peak_anon_mb']} | {m['peak_file_mb']} |")
    return lines + [""]


def write_md(path: Path, data: dict) -> None:
    lines = ["# Tables on Dask (trigger.cluster, trigger.frontends.lut.parts)", "",
             f"{data['machine']['cpus']} CPUs, shared (load average {data['machine']['load_start']} at start): "
             "wall times are upper bounds; CPU seconds beside them.", ""]
    t = data.get("table26")
    if t:
        b1, b2 = t["builds"]["1w"], t["builds"]["2w"]
        s1, s2 = t["table_stage"]["1w"], t["table_stage"]["2w"]
        lines += ["## 2^26-address table, 1 vs 2 workers", "",
                  f"Bundles byte-identical: **{'yes' if t['identical_bytes'] else 'NO'}** ({t['files']} files compared "
                  f"by sha256). Table stage: 1 worker {s1['wall_s']} s ({s1['addresses_per_s']:,} addresses/s), "
                  f"2 workers {s2['wall_s']} s ({s2['addresses_per_s']:,} addresses/s): **speed-up "
                  f"{t['table_stage']['speedup_2w_over_1w']}x**; worker CPU {s1['worker_cpu_s']} s vs {s2['worker_cpu_s']} s "
                  "(the same work; on a shared machine the wall ratio depends on what else ran at the time, "
                  "the CPU seconds do not).",
                  "", "| workers | build wall s | CPU s (client + workers) | bundle MB | peak MB: client; workers |",
                  "|---|---|---|---|---|"]
        for k, b in (("1", b1), ("2", b2)):
            peaks = ", ".join(str(w["peak_mb"]) for w in b["workers"].values())
            if b.get("memory"):
                peaks = "; ".join([str(b["memory"]["main"]["peak_rss_mb"]), ", ".join(
                    str(m["peak_rss_mb"]) for n, m in b["memory"].items() if n != "main")])
            lines.append(f"| {k} | {b['wall_s']} | {b['main_cpu_s']} | {b['bundle_mb']} | {peaks} |")
        lines += ["", *memory_table(b2.get("memory"), "the 2-worker build")]
    v = data.get("verify24")
    if v:
        lines += ["## Exhaustive 3-way verification of a 2^24-address table on 2 workers", "",
                  f"{v['vectors']:,} vectors ({v['addresses']:,} addresses + the stored ones) in "
                  f"{v['distributed']['ranges']} ranges: **{v['verify_wall_s']} s wall**; mismatches {v['mismatches']}; "
                  f"pass: {v['pass']}. Build {v['build']['wall_s']} s. Summed over tasks: C sim build "
                  f"{v['timings']['csim_build_s']} s, C sim {v['timings']['csim_s']} s, RTL sim {v['timings']['rtl_sim_s']} s "
                  f"(CPU {v['timings']['rtl_sim_cpu_s']} s). Peak memory per worker (ru_maxrss, which starts at "
                  f"the parent's size for a spawned worker: an upper bound): "
                  f"{', '.join(str(w['peak_mb']) for w in v['workers'].values())} MB.", ""]
    e = data.get("emtf")
    if e:
        sampled = e.get("memory") or {}  # /proc figures per process; a spawned worker's ru_maxrss starts at its parent's
        peaks = ", ".join(f"{k} {sampled[k]['peak_rss_mb'] if k in sampled else w['peak_mb']} MB"
                          for k, w in e["workers"].items())
        lines += ["## EMTF-size table: 2^30 addresses x 9 bits", "",
                  f"Built on 2 workers in **{e['wall_s']} s wall**, {e['main_cpu_s']} CPU s in all (client + workers; "
                  f"the workers' share {', '.join(str(w['cpu_s']) for w in e['workers'].values())} s). Peak memory: "
                  f"client {e['main_peak_mb']} MB, {peaks} (the scheduler of a LocalCluster lives in the client "
                  f"process). Bundle "
                  f"**{e['bundle_mb']} MB**, of which the memory image {e['memory_image_mb']} MB in {e['parts']} binary "
                  f"parts of {e['part_words']:,} words (hex .mem text would be {e['hex_mem_equivalent_mb']} MB). "
                  f"RTL latency {e['latency_cycles']} cycles (compression + external read).",
                  "", f"Addresses {e['range_verify']['addresses']} verified 3-way through the external-memory "
                  f"interface and its memory model in {e['range_verify']['wall_s']} s: mismatches "
                  f"{e['range_verify']['mismatches']}.", "",
                  *(memory_table(e["memory"], "the build") if e.get("memory") else [
                      "This run predates the workers writing their own parts (every part's words then crossed the "
                      "client) and the part files being unmapped after each read. Its client peak is RSS "
                      "(ru_maxrss), mapped files included; by the 2^26 breakdown above (~400 MB file-backed: "
                      "~250 MB of libraries and the 134 MB table mapped while emulating the physics sample and "
                      "test vectors) most of the 2.5 GB were most likely the 2.1 GB of part files it had mapped. "
                      "Not rerun since: `scripts/bench_scale.py --only emtf`.", ""])]
    i = data.get("emtf_interrupted")
    if i and not e:
        lines += ["## EMTF-size table: 2^30 addresses x 9 bits (interrupted run)", "",
                  f"Started on 2 workers under a load average of {i['load_average']} on {data['machine']['cpus']} "
                  f"cores; stopped after {i['parts_done']} of {i['parts_total']} parts ({i['wall_s_for_parts']} s wall "
                  f"for those parts, {i['worker_cpu_s']} CPU s on the workers: {i['addresses_per_cpu_s']:,} "
                  f"addresses per CPU second). Peak memory: workers {i['worker_peak_mb']} MB, main process "
                  f"{i['main_peak_mb']} MB. Extrapolated: {i['extrapolated_cpu_s']} CPU s for 2^30 addresses, i.e. "
                  f"about {i['extrapolated_quiet_wall_s']} s wall on 2 free cores; at the measured wall rate "
                  f"{i['extrapolated_wall_s_at_measured_rate']} s. Memory image: {i['memory_image_mb']} MB in "
                  f"{i['parts_total']} parts (hex .mem text: {round((1 << 30) * 4 / 1e6, 1)} MB). "
                  f"{i['note']}", ""]
    path.write_text("\n".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=STAGES, default=list(STAGES))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "scale.json"))
    parser.add_argument("--keep", help="keep the EMTF-size bundle in this folder")
    args = parser.parse_args()
    out = Path(args.out)
    data = json.loads(out.read_text()) if out.exists() else {}
    data["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                       "load_start": [round(x, 2) for x in os.getloadavg()]}
    work = Path(tempfile.mkdtemp(prefix="bench-scale-", dir=args.keep or None))
    try:
        for stage in args.only:
            t0 = time.perf_counter()
            if stage == "table26":
                data[stage] = stage_table26(work)
            elif stage == "verify24":
                data[stage] = stage_verify24(work)
            else:
                data[stage] = stage_emtf(work, Path(args.keep) if args.keep else None)
                data.pop("emtf_interrupted", None)  # a finished run replaces the record of an interrupted one
            data[stage]["stage_wall_s"] = round(time.perf_counter() - t0, 1)
            data["machine"]["load_end"] = [round(x, 2) for x in os.getloadavg()]
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
            write_md(out.with_suffix(".md"), data)
            log(f"{stage} done in {data[stage]['stage_wall_s']} s: {out}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
