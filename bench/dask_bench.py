"""The Dask engine: eval throughput with 1 and 2 workers against the single-process engine on the same files,
the cost of one task, and the bytes a task moves.

    .venv/bin/python bench/dask_bench.py            # prints a markdown section (about 2 minutes on 2 cores)
    .venv/bin/python bench/dask_bench.py --quick    # small sizes, a smoke test

For bench/run.py: `run(deadline, quick)` measures, `render(fig)` gives (markdown, summary rows), as the other
figures do. Clusters are LocalCluster(processes=True, threads_per_worker=1) on loopback; their start-up is
timed apart and left out of the throughput (a long-lived cluster pays it once).
"""
from __future__ import annotations

import argparse
import os
import pickle
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402

from common import ROOT, NO_DEADLINE, Deadline, fmt_s, log, measure, table  # noqa: E402

HOUSING = ROOT / "samples" / "housing.model"
METRICS = ["mse", "mae", "r2"]


def _write_parts(folder: Path, files: int, rows: int, seed: int = 0, row_group: int = 65_536) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        x = rng.normal(size=(rows, 8)).astype(np.float32)
        table_ = pa.table({**{f"f{j}": x[:, j] for j in range(8)}, "price": rng.gamma(2.0, size=rows)})
        pq.write_table(table_, folder / f"part-{i:04d}.parquet", row_group_size=row_group)


def _cluster(n: int):  # noqa: ANN202
    import logging

    import distributed

    from modelc.runtime.engine_dask import LOOPBACK_NO_DASHBOARD
    logging.getLogger("distributed").setLevel(logging.ERROR)   # quiet at close too
    t = time.perf_counter()
    cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       silence_logs=logging.ERROR, **LOOPBACK_NO_DASHBOARD)
    client = distributed.Client(cluster)
    client.wait_for_workers(n)
    return cluster, client, time.perf_counter() - t


def _cpu() -> float:
    import resource
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _noop(i: int) -> int:
    return i


def _transfer_bytes(client) -> int:  # noqa: ANN001
    """Bytes the workers fetched from one another (the merge tree's inputs), from their own transfer logs."""
    logs = client.run(lambda dask_worker: sum(e.get("total", 0) for e in dask_worker.transfer_incoming_log))
    return sum(logs.values())


def run(deadline: Deadline = NO_DEADLINE, quick: bool = False) -> dict:
    import modelc
    from modelc.runtime.engine import evaluate
    from modelc.runtime.model import LoadedModel

    files, rows = (4, 50_000) if quick else (16, 125_000)
    tiny_files, tiny_rows = (50, 50) if quick else (300, 50)
    folder = Path(tempfile.mkdtemp(prefix="modelc-dask-bench-"))
    fig: dict = {"files": files, "rows": rows, "tiny_files": tiny_files, "tiny_rows": tiny_rows}
    try:
        log(f"dask: writing {files} x {rows:,} rows and {tiny_files} x {tiny_rows} rows of Parquet")
        _write_parts(folder / "big", files, rows)
        _write_parts(folder / "tiny", tiny_files, tiny_rows, seed=1)
        proto = modelc.compile_file(HOUSING, seed=0)
        loaded = LoadedModel(proto, [], str(HOUSING))
        big, tiny = str(folder / "big"), str(folder / "tiny")

        def local(data: str) -> dict:
            return evaluate(loaded, data, "price", METRICS, progress=False)

        def on(client):  # noqa: ANN001, ANN202
            return lambda data: evaluate(loaded, data, "price", METRICS, progress=False, client=client)

        clusters = {}
        try:
            for n in (1, 2):  # both up at once, so the engines' runs interleave (drift on a shared machine hits all)
                cluster, client, fig[f"startup_{n}"] = _cluster(n)
                clusters[n] = (cluster, client)
            dask1, dask2 = on(clusters[1][1]), on(clusters[2][1])
            fig["local"], fig["dask_1"], fig["dask_2"] = local(big), dask1(big), dask2(big)  # warm: imports, sessions
            log("dask: eval throughput, local vs 1 vs 2 workers (interleaved)")
            stats = measure({"local": lambda: local(big), "dask_1": lambda: dask1(big), "dask_2": lambda: dask2(big)},
                            repeats=5, budget_s=120, deadline=deadline)
            for k, st in stats.items():
                fig[f"t_{k}"], fig[f"n_{k}"] = st.median, st.n
            log("dask: per-task cost on tiny partitions")
            client = clusters[2][1]
            all_tiny = sorted(str(p) for p in Path(tiny).glob("*.parquet"))
            half = all_tiny[:len(all_tiny) // 2]
            cpu = _cpu()                               # this process: the client and (LocalCluster) the scheduler
            dask2(half)
            cpu_half = _cpu() - cpu
            before, cpu = _transfer_bytes(client), _cpu()
            fig["tiny_result"] = dask2(all_tiny)
            fig["cpu_tiny"] = (_cpu() - cpu - cpu_half) / (len(all_tiny) - len(half))   # per extra partition
            fig["transfer_tiny"] = _transfer_bytes(client) - before
            stats = measure({"local_half": lambda: local(half), "local_all": lambda: local(all_tiny),
                             "dask_half": lambda: dask2(half), "dask_all": lambda: dask2(all_tiny)},
                            repeats=3, budget_s=60, deadline=deadline)
            for k, st in stats.items():
                fig[f"t_tiny_{k}"] = st.median
            client.gather(client.map(_noop, range(tiny_files)))
            cpu, t = _cpu(), time.perf_counter()
            client.gather(client.map(_noop, range(tiny_files), pure=False))
            fig["t_noop"], fig["cpu_noop"] = time.perf_counter() - t, _cpu() - cpu
        finally:
            for cluster, client in clusters.values():
                client.close()
                cluster.close()
        fig["state_sizes"] = state_sizes()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return fig


def state_sizes() -> list[tuple[str, int]]:
    """Pickled size of the merged metric states for a few metric sets: what one task returns."""
    from modelc.compiler.types import TensorType
    from modelc.runtime.metrics import MetricSet
    out = []
    t = TensorType("float32", ("batch",))
    for specs in (["mse"], METRICS, ["auc(bins=200)"], ["confusion_matrix(100)"], ["confusion_matrix(1000)"]):
        ms = MetricSet(specs)
        ms.state_graph(t, t, False)
        states = {s.output: ms.default(s) if s.rule != "bincount" else np.zeros(int(np.prod(s.shape)) or 1, "int64")
                  for p in ms.plans for s in p.states}
        out.append((", ".join(specs), len(pickle.dumps(states, protocol=pickle.HIGHEST_PROTOCOL))))
    return out


def render(fig: dict) -> tuple[str, list[tuple[str, str, bool | None]]]:
    total = fig["files"] * fig["rows"]
    rows_md = []
    base = fig["t_local"]
    for label, key, n in (("single process (local engine, onnxruntime 2 threads)", "t_local", fig["n_local"]),
                          ("Dask, 1 worker (onnxruntime 2 threads)", "t_dask_1", fig["n_dask_1"]),
                          ("Dask, 2 workers (onnxruntime 1 thread each)", "t_dask_2", fig["n_dask_2"])):
        t = fig[key]
        rows_md.append([label, fmt_s(t), f"{total / t:,.0f}", f"{base / t:.2f}×", str(n)])
    d2 = fig["dask_2"]
    local = fig["local"]["metrics"]
    worst = max(abs(d2["metrics"][k] / local[k] - 1) for k in local)
    p_tiny = fig["tiny_files"]
    half = p_tiny // 2
    slope_dask = (fig["t_tiny_dask_all"] - fig["t_tiny_dask_half"]) / (p_tiny - half)
    slope_local = (fig["t_tiny_local_all"] - fig["t_tiny_local_half"]) / (p_tiny - half)
    fixed_dask = fig["t_tiny_dask_all"] - slope_dask * p_tiny
    fixed_local = fig["t_tiny_local_all"] - slope_local * p_tiny
    in_task = fig["tiny_result"]["dask"]["task_seconds"] / p_tiny
    noop = fig["t_noop"] / p_tiny
    cpu_task = fig["cpu_tiny"]
    cpu_noop = fig["cpu_noop"] / p_tiny
    overhead = slope_dask - in_task / 2      # wall per partition beyond the task bodies spread over 2 workers
    dask_fig = d2["dask"]
    preds = fig["rows"] * 4
    transfer = fig["transfer_tiny"] / p_tiny
    text = "\n".join([
        f"{fig['files']} Parquet files × {fig['rows']:,} rows (8 float32 features + a float64 target, one row group "
        f"per 65,536 rows), samples/housing.model, metrics {', '.join(METRICS)}, batch 1,024, one task per file. "
        "LocalCluster(processes=True, threads_per_worker=1) on loopback; cluster start-up is not in the times.",
        "", table(["engine", "median", "rows/s", "throughput vs single process", "repeats"], rows_md), "",
        f"Cluster start-up: {fmt_s(fig['startup_1'])} (1 worker), {fmt_s(fig['startup_2'])} (2 workers); the first "
        "job on a fresh cluster also pays each worker's import of onnxruntime and its session build (not timed).",
        f"Results vs the single-process engine: largest relative difference {worst:.1e} "
        "(float64 sums merged in another order; onnxruntime thread counts differ in the predictions' last bits).",
        "",
        f"**Per-task cost**, {half} and {p_tiny} files of {fig['tiny_rows']} rows (the slope between the two "
        "is the cost of one more partition; the intercept is the job's fixed cost):",
        "",
        table(["", "per extra partition (wall)", "fixed cost per job"], [
            ["Dask, 2 workers", fmt_s(slope_dask), fmt_s(fixed_dask)],
            ["local engine (files one after another)", fmt_s(slope_local), fmt_s(fixed_local)],
        ]),
        "",
        f"Inside each Dask task (open the file, read, run model and states, merge): {fmt_s(in_task)}; with 2 "
        f"workers that is {fmt_s(in_task / 2)} of wall per partition, so Dask adds ≈ {fmt_s(max(overhead, 0))} "
        f"per task. Client + scheduler CPU (one process with a LocalCluster): {fmt_s(cpu_task)} per extra "
        f"partition (its task and its share of the merge tree); an empty task (client.map of a no-op) costs "
        f"{fmt_s(noop)} wall and {fmt_s(cpu_noop)} of client + scheduler CPU. That CPU per task bounds the "
        f"scheduler at ≈ {1 / max(cpu_task, 1e-9):,.0f} partitions/s (see docs/dask.md).",
        "",
        "**Bytes per task** (2 workers, from the job's own figures and the workers' transfer logs):",
        "",
        table(["what", "bytes", "how often"], [
            ["task arguments: the job (column plan, rules) + one partition (pickled)", f"{dask_fig['task_bytes']:,}",
             "each task"],
            ["result: the partition's metric states (pickled)", f"{dask_fig['state_bytes']:,}", "each task"],
            ["worker-to-worker fetches (merge-tree inputs; Dask's transfer log, sizeof estimates)",
             f"{transfer:,.0f}", "per task, on average"],
            ["the model (fused with the metric-state graph)", f"{dask_fig['model_bytes_per_worker']:,}",
             "once per worker per job"],
            [f"for comparison: one file's predictions ({fig['rows']:,} × float32)", f"{preds:,}", "never sent"],
        ]),
        "",
        "Metric-state size (what a task returns) by metric set:",
        "",
        table(["metrics", "state bytes"], [[m, f"{b:,}"] for m, b in fig["state_sizes"]]),
    ])
    ratio = base / fig["t_dask_2"]
    summary = [("D. Dask, 2 workers vs single process (eval throughput)", f"{ratio:.2f}×", None),
               ("D. Dask per-task overhead (2 workers, wall)", fmt_s(max(overhead, 0)), None),
               ("D. bytes back per task (metric states)", f"{dask_fig['state_bytes']:,} B",
                dask_fig["state_bytes"] < 4096)]
    return text, summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    os.chdir(ROOT)
    t = time.perf_counter()
    text, _ = render(run(quick=args.quick))
    print(f"## Evaluation on Dask\n\n{text}\n\n*(took {time.perf_counter() - t:.0f} s)*")


if __name__ == "__main__":
    main()
