"""The Dask engine (`--engine dask`, docs/dask.md): the tasks of tasks.py, one per partition, on a cluster.

The model's bytes go to each worker once, in a worker plugin (dask_worker.py); every worker builds one
onnxruntime session per model the first time a task needs it and keeps it for the rest of the job. For eval
each task returns only its partition's tally (the small metric states), and tallies merge in a tree on the
cluster; for run each task writes its own predictions file atomically.

Nothing imports Dask until this engine is asked for: without the `modelc-onnx[dask]` extra, `--engine dask` says
how to install it, and the local engine works as before.
"""
from __future__ import annotations

import logging
import os
import pickle
import time
import uuid
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from ..compiler.source import ModelcError, user_error
from ..version import DISTRIBUTION
from .model import FUSED, PREDICT, LoadedModel
from .partitions import Partition
from .report import Progress, eval_result, run_result
from .session import ExternalWeights
from .tasks import EvalPlan, RunJob, Tally, merge_tallies

INSTALL_HINT = f"--engine dask needs Dask's distributed scheduler: pip install '{DISTRIBUTION}[dask]'"
FANIN = 8           # partition tallies merged per reduction task
# no dashboard; the scheduler's small HTTP server (health, metrics) on a free loopback port, never 8787's warning
LOOPBACK_NO_DASHBOARD = {"dashboard_address": None,
                         "scheduler_kwargs": {"dashboard": False, "dashboard_address": "127.0.0.1:0"}}


def require_dask() -> Any:
    try:
        import distributed
    except ImportError:
        raise user_error(f"{INSTALL_HINT} (or pip install 'dask[distributed]')") from None
    return distributed


@contextmanager
def connect(client: Any = None, scheduler: str | None = None, workers: int | None = None) -> Iterator[Any]:
    """The user's client as it is; a client of --scheduler ADDRESS; or a LocalCluster of --workers N processes
    (default: one per core), one thread each, on loopback, closed at the end."""
    distributed = require_dask()
    if client is not None:
        yield client
        return
    if scheduler is not None:
        try:
            own = distributed.Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as e:
            raise user_error(f"cannot reach the Dask scheduler at {scheduler}: {e}") from None
        with own:
            yield own
        return
    if workers is not None and workers < 1:
        raise user_error(f"--workers must be at least 1, got {workers}")
    try:
        n = workers or len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        n = workers or os.cpu_count() or 1
    cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       silence_logs=logging.ERROR, **LOOPBACK_NO_DASHBOARD)
    with cluster, distributed.Client(cluster) as own:
        yield own


@contextmanager
def model_on_workers(client: Any, protos: list[bytes], provider: str, kind: str,
                     output: str | None = None, external: ExternalWeights | None = None) -> Iterator[str]:
    """Register the model as a worker plugin for the length of a job; unregistered (sessions freed) after.
    A model with external data goes without its weights: workers read them from its folder."""
    if external is not None and external.arrays:
        raise user_error("a model over 2 GB runs on Dask from its .onnx file (the workers read its weights "
                         "from there): compile it first with modelc compile MODEL -o MODEL.onnx")
    from urllib.parse import urlparse

    from .dask_worker import ModelPlugin
    threads_by_host: dict[str, int] = {}
    for address, n in client.nthreads().items():
        host = urlparse(address).hostname or ""
        threads_by_host[host] = threads_by_host.get(host, 0) + n
    name = f"modelc-model-{uuid.uuid4().hex[:12]}"
    for attempt in range(3):  # a worker that dies during the broadcast fails it; its restart gets the plugin
        try:
            client.register_plugin(ModelPlugin(name, protos, provider, kind, output, threads_by_host, external),
                                   name=name)
            break
        except OSError:  # distributed's CommClosedError
            if attempt == 2:
                raise
            time.sleep(0.5)
    try:
        yield name
    finally:
        try:
            client.unregister_worker_plugin(name)
        except Exception:  # noqa: BLE001 - a closing cluster; the sessions go with its workers
            pass


def _lost(error: BaseException, labels: dict[str, str]) -> ModelcError:
    """A task Dask gave up on (its workers died more often than distributed.scheduler.allowed-failures)."""
    text = str(error)
    for key, label in labels.items():
        if key in text:
            return user_error(f"{label}: Dask gave up on this partition: {text}")
    return user_error(f"the Dask job failed: {type(error).__name__}: {text}")


def _wire_bytes(*objects: Any) -> int:
    return len(pickle.dumps(objects, protocol=pickle.HIGHEST_PROTOCOL))


def tree_reduce(client: Any, futures: list[Any], rules: dict[str, str], token: str, fanin: int = FANIN) -> Any:
    """Merge tallies FANIN at a time on the cluster, level by level, until one is left (log_FANIN(P) levels)."""
    from .dask_worker import merge_task
    level = 0
    while len(futures) > 1:
        futures = [client.submit(merge_task, rules, *futures[i:i + fanin], key=f"modelc-merge-{token}-{level}-{i}")
                   for i in range(0, len(futures), fanin)]
        level += 1
    return futures[0]


def _submit_and_wait(client: Any, partitions: list[Partition], token: str, progress: bool | None, what: str,
                     submit: Callable[[Partition], Any], rules: dict[str, str] | None, fanin: int) -> Tally:
    """Submit one task per partition (and, for eval, the merge tree); advance the bar as partitions finish."""
    from distributed import as_completed
    labels = {f"-{token}-{p.index}'": p.label for p in partitions}  # a key as it shows in KilledWorker's text
    futures = [submit(p) for p in partitions]
    final = tree_reduce(client, futures, rules, token, fanin) if rules is not None else None
    rows = {f.key: p.rows for f, p in zip(futures, partitions)}
    bar = Progress(len(partitions), progress, what, partitions=True)
    try:
        for f in as_completed(futures):
            bar.advance(rows.get(f.key), steps=1)
        if final is not None:
            return final.result()
        return merge_tallies({}, *client.gather(futures))
    except BaseException as e:
        # stop what is still queued (an interrupt, or Dask gave up on a partition); done tasks just go
        client.cancel([f for f in [*futures, final] if f is not None and not f.done()])
        if isinstance(e, Exception) and not isinstance(e, ModelcError):  # KilledWorker and the like
            raise _lost(e, labels) from None
        raise
    finally:
        bar.close()


def evaluate_dask(plan: EvalPlan, partitions: list[Partition], data: Any, *, provider: str = "cpu",
                  progress: bool | None = None, client: Any = None, scheduler: str | None = None,
                  workers: int | None = None, fanin: int = FANIN) -> dict[str, Any]:
    """One task per partition returns its tally; tallies merge in a tree on the cluster; the metrics are
    finalized here. The result of the local engine, plus the Dask figures."""
    from .dask_worker import evaluate_task
    protos = [p.SerializeToString() for p in plan.graphs.protos]
    token = uuid.uuid4().hex[:12]
    connect_started = time.perf_counter()
    with connect(client, scheduler, workers) as c:
        startup = time.perf_counter() - connect_started
        n_workers = len(c.nthreads())
        started = time.perf_counter()
        with model_on_workers(c, protos, provider, plan.graphs.kind, plan.graphs.output.name,
                              plan.graphs.external) as model_key:
            tally = _submit_and_wait(c, partitions, token, progress, "evaluating",
                                     lambda p: c.submit(evaluate_task, plan.job, model_key, p,
                                                        key=f"modelc-eval-{token}-{p.index}"),
                                     plan.job.rules, fanin)
        seconds = time.perf_counter() - started
    base = {"provider": provider, "output": plan.graphs.output.name, "fused": plan.graphs.kind == FUSED,
            "engine": "dask", "workers": n_workers,
            "dask": {"startup_seconds": round(startup, 3), "model_bytes_per_worker": sum(map(len, protos)),
                     "task_bytes": _wire_bytes(plan.job, "modelc-model-xxxxxxxxxxxx", partitions[0]),
                     "state_bytes": _wire_bytes(tally.states), "reduction_fanin": fanin,
                     "task_seconds": round(tally.task_seconds, 6)}}
    after = {"partitions": len(partitions), "failed_partitions": tally.failed}
    return eval_result(plan.metric_set, tally, seconds, data, base, after, plan.job.on_missing)


def run_dask(loaded: LoadedModel, job: RunJob, partitions: list[Partition], paths: list[str], output_dir: str, *,
             provider: str = "cpu", progress: bool | None = None, client: Any = None,
             scheduler: str | None = None, workers: int | None = None) -> dict[str, Any]:
    """Each worker writes its partitions' predictions, one file each, atomically; partitions whose file
    exists are skipped (a rerun finishes what a failed run left)."""
    from .dask_worker import predict_task
    todo = [(p, path) for p, path in zip(partitions, paths) if not os.path.exists(path)]
    done_before = len(partitions) - len(todo)
    tally = Tally(partitions=done_before, skipped=done_before)
    token = uuid.uuid4().hex[:12]
    with connect(client, scheduler, workers) as c:
        n_workers = len(c.nthreads())
        started = time.perf_counter()
        if todo:
            by_index = {p.index: path for p, path in todo}
            with model_on_workers(c, [loaded.proto.SerializeToString()], provider, PREDICT, None,
                                  loaded.external) as model_key:
                done = _submit_and_wait(c, [p for p, _ in todo], token, progress, "predicting",
                                        lambda p: c.submit(predict_task, job, model_key, p, by_index[p.index],
                                                           key=f"modelc-run-{token}-{p.index}"), None, FANIN)
            tally = merge_tallies({}, tally, done)
        seconds = time.perf_counter() - started
    return run_result(tally, output_dir, provider, job, seconds, "dask", len(partitions),
                      {"workers": n_workers})
