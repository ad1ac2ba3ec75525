"""What runs on a Dask worker: the model plugin (the model's bytes, once per worker) and the task functions,
which run the tasks of tasks.py on the worker's one Runner per model.

Imported only by the Dask engine (it imports Dask); tasks pickle as references to these functions, so a worker
needs modelc installed, as the client does. Of the runtime it imports only model and tasks.
"""
from __future__ import annotations

import os
import threading
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from ..compiler.source import ModelcError
from .model import Runner
from .session import ExternalWeights
from .tasks import EvalJob, RunJob, Tally, evaluate_partition, merge_tallies, predict_partition

_MODELS: dict[str, "ModelPlugin"] = {}     # plugin name -> the model's bytes, on each worker
_RUNNERS: dict[str, Runner] = {}           # plugin name -> its sessions, built by the first task that needs them
_LOCK = threading.Lock()
BUILT: dict[str, int] = {}                 # plugin name -> sessions built in this process (tests: once per worker)


class ModelPlugin(WorkerPlugin):
    """The model's bytes, registered once per job: Dask hands them to each worker once (and to any worker that
    joins later, e.g. one restarted after a crash), never with a task."""

    idempotent = False

    def __init__(self, name: str, protos: list[bytes], provider: str, kind: str, output: str | None,
                 threads_by_host: dict[str, int], external: ExternalWeights | None = None):
        self.name = name
        self.protos, self.provider, self.kind, self.output = protos, provider, kind, output
        self.external = external  # a model's external data: its folder, the same path on every worker
        self.threads_by_host = threads_by_host

    def setup(self, worker: Any) -> None:
        _MODELS[self.name] = self

    def teardown(self, worker: Any) -> None:
        with _LOCK:
            _MODELS.pop(self.name, None)
            _RUNNERS.pop(self.name, None)


def _ort_threads(plugin: ModelPlugin) -> int:
    """onnxruntime threads per session: this host's cores shared among the Dask threads on it."""
    from urllib.parse import urlparse

    from distributed import get_worker
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    worker = get_worker()
    host = urlparse(worker.address).hostname or ""
    return max(1, cores // max(1, plugin.threads_by_host.get(host, worker.state.nthreads)))


def _runner(name: str) -> Runner:
    with _LOCK:
        runner = _RUNNERS.get(name)
        if runner is None:
            plugin = _MODELS.get(name)
            if plugin is None:
                raise RuntimeError(f"model {name} is not on this worker (its plugin was not set up)")
            runner = _RUNNERS[name] = Runner(plugin.protos, plugin.provider, plugin.kind, plugin.output,
                                             _ort_threads(plugin), plugin.external)
            BUILT[name] = BUILT.get(name, 0) + 1
        return runner


def _runner_or_raise(name: str) -> Runner:
    """A session that cannot be built (e.g. --provider cuda on a worker without a GPU) fails the job, with a
    plain exception: a ModelcError does not survive pickling back to the client."""
    try:
        return _runner(name)
    except ModelcError as e:
        raise RuntimeError(str(e)) from None


def evaluate_task(job: EvalJob, model: str, partition: Any) -> Tally:
    return evaluate_partition(job, _runner_or_raise(model), partition)


def predict_task(job: RunJob, model: str, partition: Any, out_path: str) -> Tally:
    return predict_partition(job, _runner_or_raise(model), partition, out_path)


def merge_task(rules: dict[str, str], *tallies: Tally) -> Tally:
    return merge_tallies(rules, *tallies)
