"""Streaming metrics: per-batch states from an ONNX graph, merged exactly, finalized on the merged states.

    >>> import numpy as np, modelc
    >>> m = modelc.metric("precision(threshold=0.7)")
    >>> m.update(np.array([1, 0, 1, 1]), np.array([0.9, 0.8, 0.2, 0.75]))
    >>> round(m.result(), 4)
    0.6667
"""
from __future__ import annotations

import re
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from ..compiler import nodes as N
from ..compiler.arguments import given_twice
from ..compiler.keras_names import KERAS_KEYWORDS, KERAS_METRICS, keras_metric_call
from ..compiler.lower_metric import MetricLowerer, MetricPlan
from ..compiler.source import Diagnostic, ModelcError, SourceFiles, did_you_mean, user_error
from ..compiler.functions_classify import READS_LABELS
from ..compiler.states import (NAN_PREDICTIONS, StateSpec, default_state, merge_states, names_in, split_metric,
                               state_rule)
from ..compiler.types import DTYPES, TensorType, dtype_name, show_shape
from ..compiler.values import LayerVal
from .finalize import Finalizer
from .prelude import PRELUDE, prelude_definitions

if TYPE_CHECKING:
    import onnx

NAN_STATE = StateSpec(NAN_PREDICTIONS, NAN_PREDICTIONS, "sum", "int64", ())
# How the hints of a spec's errors name the ways to give metrics: the command line's flags, the API's arguments
HINT_WORDS = {"cli": {"spec": "--metric", "imports": "--import FILE.model"},
              "api": {"spec": "modelc.metric()", "imports": 'imports=["FILE.model"]'}}
BARE_NAME = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")
CHUNK_ROWS = 1 << 20   # Metric.update runs its state graph on at most this many rows at a time (states merge exactly)


def metric_dtype(dtype: Any) -> str | None:
    """The dtype name of a y_pred (a numpy dtype) that metrics take, or None: not bfloat16, for which
    onnxruntime's CPU provider has no arithmetic (numpy itself lacks it: it comes from ml_dtypes)."""
    name = dtype_name(dtype)
    return name if name is not None and not DTYPES[name].ml_dtypes else None




def metric_types(what: str, dtype: Any, pred_shape: tuple, true_shape: tuple) -> tuple[TensorType, TensorType]:
    """(y_true, y_pred) as a state graph types them, from y_pred's numpy dtype and the trailing shapes (after
    the batch axis): y_true takes y_pred's float dtype, float64 against integer predictions (class labels).
    `what` names y_pred in the error."""
    name = metric_dtype(dtype)
    if name is None:
        raise user_error(f"{what} has dtype {np.dtype(dtype)}, which metrics do not take")
    return TensorType(truth_dtype(name), ("batch", *true_shape)), TensorType(name, ("batch", *pred_shape))


def truth_dtype(pred_dtype: str) -> str:
    """y_true's dtype in a state graph: y_pred's float dtype, float64 against integer predictions."""
    return pred_dtype if np.dtype(pred_dtype).kind == "f" else "float64"


def metric_definitions(*programs: Any, base: dict[str, N.Definition] | None = None) -> dict[str, N.Definition]:
    """The prelude's metrics (or `base`), overridden by the metrics of the given programs (the model file, --import
    files: driver.load_file has checked them), with those programs' layers, which their metrics may call."""
    found = dict(base) if base is not None else {d.name: d for d in prelude_definitions() if d.kind == "metric"}
    for program in programs:
        found.update({d.name: d for d in program.order if d.kind in ("metric", "layer")})
    return found


def parse_spec(spec: str, words: str = "cli") -> tuple[str, list[Any], dict[str, Any]]:
    """`huber(threshold=2)` -> ("huber", [], {"threshold": 2}); arguments are literals."""
    text = spec.strip()
    if BARE_NAME.fullmatch(text):  # `mse` needs no parser: eval of an .onnx file never loads lark
        return text, [], {}
    from ..compiler.parse import parse_metric_spec
    try:
        ref = parse_metric_spec(text)
        args = [literal(a) for a in ref.args or []]
        kwargs: dict[str, Any] = {}
        for k in ref.kwargs:
            if k.name in kwargs:
                raise user_error(given_twice(ref.name, k.name))
            kwargs[k.name] = literal(k.value)
    except ModelcError as e:
        shell = " (in a shell: --metric 'auc(spacing=\"logit\")')" if words == "cli" else ""
        hint = f"; strings take double quotes, as in the language: auc(spacing=\"logit\"){shell}" if "'" in text else ""
        raise user_error(f"cannot read metric '{spec}' ({e.diagnostics[0].message}); write NAME or "
                         f"NAME(arg, key=value), e.g. huber(threshold=2.0){hint}") from None
    return ref.name, args, kwargs


def literal(e: N.Expr) -> Any:
    """The value of a literal argument: a number, string, true/false, none or a list of them."""
    if isinstance(e, (N.Number, N.String, N.Bool)):
        return e.value
    if isinstance(e, N.Name) and e.id == "none":
        return None
    if isinstance(e, N.Unary) and e.op == "-" and isinstance(e.operand, N.Number):
        return -e.operand.value
    if isinstance(e, N.ListExpr):
        return [literal(i) for i in e.items]
    raise user_error("an argument is a number, a string, true, false, none or a list of them")


def bind_metric(spec: str, definitions: dict[str, N.Definition], words: str = "cli") -> LayerVal:
    name, args, kwargs = parse_spec(spec, words)
    metrics = {n for n, d in definitions.items() if d.kind == "metric"}
    name, kwargs = keras_metric_call(name, kwargs, metrics, lambda n: [p.name for p in definitions[n].hparams])
    if name not in metrics:
        keras = [k for k, v in KERAS_METRICS.items() if v in metrics]  # a misspelt Keras name gets one too
        raise user_error(f"unknown metric '{name}'{did_you_mean(name, [*sorted(metrics), *keras])}; built-in metrics: "
                         + ", ".join(sorted(d.name for d in prelude_definitions() if d.kind == "metric"))
                         + f"; a metric of your own comes from a .model file: {HINT_WORDS[words]['imports']}")
    d = definitions[name]
    params = [p.name for p in d.hparams]
    keras = [k for k, (new, callees) in KERAS_KEYWORDS.items() if name in callees and new in params]
    for key in kwargs:  # a misspelt Keras keyword (`huber(delt=2)`) is pointed at the Keras word, which works
        if key not in params and not did_you_mean(key, params) and did_you_mean(key, keras):
            raise user_error(f"metric '{spec}': {name} has no parameter '{key}'{did_you_mean(key, keras)}")
    try:
        return MetricLowerer(definitions).bind(LayerVal(d), args, kwargs, d.loc, None)
    except ModelcError as e:  # a bad argument is the spec's fault, not the definition's: no position
        raise user_error(f"metric '{spec}': {e.diagnostics[0].message}") from None


def row_weights(weights: Any, rows: int, what: str) -> np.ndarray:
    """Sample weights as a state graph takes them, float64: one per row [rows] (a scalar, or a column [rows, 1],
    squeezed as Keras does), or one per element [rows, d, ...]."""
    w = np.asarray(weights)
    if w.dtype.kind not in "biuf":
        raise user_error(f"{what} has dtype {w.dtype}; weights are numbers")
    w = w.astype(np.float64)
    if w.ndim == 0:
        return np.full(rows, float(w))
    while w.ndim > 1 and w.shape[-1] == 1:
        w = w[..., 0]
    if len(w) != rows:
        raise user_error(f"{what} has {len(w)} rows, y_pred {rows}")
    return np.ascontiguousarray(w)


def check_labels(specs: list[str], y_true: np.ndarray, first_row: int) -> None:
    """Refuse a fractional class label (1.5) before a metric that takes class labels truncates it to a class;
    `first_row` is the number of the batch's first row."""
    if not specs or y_true.dtype.kind != "f":
        return
    whole = np.floor(y_true)
    if np.array_equal(whole, y_true):  # the common case in two passes; NaN labels fall through to the full test
        return
    bad = (y_true != whole) & ~np.isnan(y_true)
    if bad.any():
        at = int(np.argmax(bad.reshape(len(bad), -1).any(axis=1)))
        value = y_true[at][bad[at]].flat[0] if y_true.ndim > 1 else y_true[at]
        raise user_error(f"metric '{specs[0]}' takes class labels (whole numbers), but target row {first_row + at} "
                         f"holds {float(value):g}")


class MetricSet:
    """Several metrics whose states come from one graph: the unit the evaluator runs and merges."""

    def __init__(self, specs: list[str], definitions: dict[str, N.Definition] | None = None, words: str = "cli"):
        self.specs = list(specs)
        self.definitions = definitions or metric_definitions()
        self.bound = [(s, bind_metric(s, self.definitions, words)) for s in self.specs]
        self.label_specs = [s for s, lv in self.bound  # metrics that read y_true as class labels
                            if names_in(split_metric(lv.layer).per_batch) & READS_LABELS]  # type: ignore[arg-type]
        self.plans: list[MetricPlan] = []
        self.states: dict[str, np.ndarray] = {}
        self.rules: dict[str, StateSpec] = {}

    # --- the per-batch graph ------------------------------------------------
    def state_graph(self, y_true: TensorType, y_pred: TensorType, weighted: bool | tuple, opset: int | None = None,
                    ir_version: int | None = None, max_rows: int | None = None) -> "onnx.ModelProto":
        """The per-batch graph of every metric's states; `max_rows`, the most rows a batch will have (None:
        unknown), lets counts of small batches sum in float32 (exact below 2**24 elements)."""
        from ..compiler.emit import DEFAULT_OPSET, emit_model
        try:
            model, plans = MetricLowerer(self.definitions).lower_metrics(self.bound, y_true, y_pred, weighted,
                                                                         max_rows)
        except ModelcError as e:  # the metric may come from the prelude, the model's file or an --import
            raise ModelcError(SourceFiles().attach([self.at_spec(d, y_true, y_pred) for d in e.diagnostics])) \
                from None
        self.plans = plans
        self.rules = {s.output: s for p in plans for s in p.states}
        self.rules[NAN_PREDICTIONS] = NAN_STATE
        self.check_final()
        proto = emit_model(model, {}, opset=opset or DEFAULT_OPSET, inline=True)
        if ir_version is not None:
            proto.ir_version = ir_version
        return proto

    def at_spec(self, d: Diagnostic, y_true: TensorType, y_pred: TensorType) -> Diagnostic:
        """A diagnostic inside the prelude, which the user neither wrote nor can edit, as the fault of the
        --metric spec (or modelc.metric call) that instantiated it, with the types it met."""
        if d.span is None or d.span.file != str(PRELUDE):
            return d
        specs = [s for s, lv in self.bound if lv.layer.loc.file == d.span.file  # type: ignore[union-attr]
                 and lv.layer.loc.line <= d.span.line <= lv.layer.loc.end_line] or self.specs  # type: ignore
        return Diagnostic(None, f"metric '{specs[0]}' on y_true {show_shape(y_true.shape)}, y_pred "
                                f"{show_shape(y_pred.shape)}: {d.message}")

    # --- merging -------------------------------------------------------------
    def check_states(self, states: dict[str, np.ndarray]) -> None:
        """Refuse states with rows outside a bincount's classes (they land in its extra last bin)."""
        for name, value in states.items():
            if self.rules[name].rule == "bincount" and np.asarray(value)[-1] != 0:
                plan = next((p for p in self.plans if any(s.output == name for s in p.states)), None)
                k = plan.hparams.get("k") if plan is not None and plan.definition.name == "confusion_matrix" else None
                classes = f"class indices in [0, {k})" if isinstance(k, int) else "class indices from 0 to k - 1 " \
                    "for confusion_matrix(k), below the number of class scores, or 0 and 1 for integer " \
                    "predictions (for more classes, give the class scores [batch, k])"
                raise user_error(f"{self.owner(name)}: {np.asarray(value)[-1]:g} rows have a label (or a predicted "
                                 f"class) outside the classes the metric takes: {classes}")

    def accumulate(self, outputs: dict[str, np.ndarray]) -> None:
        """Merge one batch's states (or another worker's merged states) into ours, each by its rule."""
        outputs = {name: np.asarray(value) for name, value in outputs.items()}
        self.check_states(outputs)  # all of them first: a batch with bad labels changes nothing
        merge_states(self.states, outputs, {name: spec.rule for name, spec in self.rules.items()})

    def owner(self, output: str) -> str:
        for plan in self.plans:
            if any(s.output == output for s in plan.states):
                return plan.spec
        return output

    def signature(self) -> list[tuple[str, dict[str, Any]]]:
        """What the states mean: each metric's name and hyperparameters, defaults filled in."""
        lowerer = MetricLowerer(self.definitions)
        return [(lv.layer.name, lowerer.complete(lv, lv.layer.loc)) for _, lv in self.bound]  # type: ignore[union-attr]

    def merge(self, other: "MetricSet") -> None:
        if other.signature() != self.signature():
            raise user_error(f"cannot merge the states of {', '.join(other.specs)} into {', '.join(self.specs)}: "
                             "only the same metrics with the same arguments merge")
        if other.rules and not self.rules:
            self.plans, self.rules = other.plans, other.rules
        self.accumulate(other.states)

    def reset(self) -> None:
        self.states = {}

    def check_final(self) -> None:
        """Each final part run once on states of no rows when the graph is built, so that a hyperparameter only
        the final part reads (`r2(multioutput="mean")`) is refused before any data is read."""
        saved, self.states = self.states, {}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.results()
        finally:
            self.states = saved

    def named_states(self) -> list[tuple[MetricPlan, dict[str, np.ndarray]]]:
        """Each metric's merged states by their declared names (a bincount without its extra bin)."""
        out = []
        for plan in self.plans:
            states = {}
            for s in plan.states:
                value = self.states.get(s.output, default_state(s))
                states[s.name] = value[:-1] if s.rule == "bincount" else value
            out.append((plan, states))
        return out

    def results(self) -> dict[str, Any]:
        out = {}
        for plan, states in self.named_states():
            env = {**plan.hparams, **states}
            try:
                value = Finalizer(env).run(plan.final)
            except ModelcError as e:  # a bad hyperparameter value, found by a final-part function
                raise user_error(f"metric '{plan.spec}': {e.diagnostics[0].message}") from None
            out[plan.spec] = to_python(value)
            if isinstance(out[plan.spec], float) and np.isnan(out[plan.spec]):
                warnings.warn(f"metric {plan.spec} is undefined on this data (NaN)", RuntimeWarning, stacklevel=2)
        return out

    def nan_predictions(self) -> int:
        return int(self.states.get(NAN_PREDICTIONS, 0))

    def state_dict(self) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self.states.items()}

    def load_state_dict(self, states: dict[str, np.ndarray]) -> None:
        self.states = {k: np.asarray(v).copy() for k, v in states.items()}
        if self.states and not self.plans:
            self.plan_loaded_states()

    def plan_loaded_states(self) -> None:
        """Plans for states loaded before any update: a state's name, rule and the final part need no types."""
        lowerer = MetricLowerer(self.definitions)
        plans, rules = [], {NAN_PREDICTIONS: NAN_STATE}
        for index, (spec, lv) in enumerate(self.bound):
            body = split_metric(lv.layer)  # type: ignore[arg-type]
            plan = MetricPlan(spec, lv.layer, lowerer.complete(lv, lv.layer.loc), final=body.final)  # type: ignore
            for stmt in body.states:
                output = f"m{index}.{stmt.name}"
                if output not in self.states:
                    raise user_error(f"{spec}: the loaded states lack '{stmt.name}'; they come from another "
                                     "metric (states: " + ", ".join(sorted(self.states)) + ")")
                value = self.states[output]
                plan.states.append(StateSpec(output, stmt.name, state_rule(stmt), str(value.dtype),  # type: ignore
                                             value.shape))
            plans.append(plan)
            rules.update({s.output: s for s in plan.states})
        self.plans, self.rules = plans, rules


def to_python(value: Any) -> Any:
    value = np.asarray(value)
    if value.ndim == 0:
        return int(value) if value.dtype.kind in "iub" else float(value)
    return value.tolist()


class Metric:
    """One streaming metric for the Python API: update / merge / result / reset / state_dict."""

    def __init__(self, spec: str, definitions: dict[str, N.Definition] | None = None, provider: str = "cpu",
                 imports: Any = ()):
        self.spec = spec
        self.provider = provider
        if isinstance(imports, (str, bytes)) or not hasattr(imports, "__iter__"):
            raise user_error(f"imports= takes a list of .model files, got {imports!r}: imports=[{imports!r}]")
        if imports:
            from ..compiler import driver
            try:
                programs = [driver.load_file(p) for p in imports]
            except ModelcError as e:  # a file that cannot be read: say which argument named it
                raise ModelcError([d if d.span else Diagnostic(None, f"imports=: {d.message}")
                                   for d in e.diagnostics]) from None
            definitions = metric_definitions(*programs, base=definitions)
        self._set = MetricSet([spec], definitions, words="api")
        self._sessions: dict[tuple, Any] = {}
        self._rows = 0  # rows updated so far: where an error points

    def _session(self, y_true: np.ndarray, y_pred: np.ndarray, weighted: bool | tuple) -> Any:
        key = (y_true.dtype.str, y_true.shape[1:], y_pred.dtype.str, y_pred.shape[1:], weighted)
        if key not in self._sessions:
            from .session import Session
            t_true, t_pred = metric_types("y_pred", y_pred.dtype, y_pred.shape[1:], y_true.shape[1:])
            # one thread: a state graph is a few cheap passes, where a thread pool costs more than it gains
            graph = self._set.state_graph(t_true, t_pred, weighted, max_rows=CHUNK_ROWS)
            self._sessions[key] = Session(graph, self.provider, threads=1)
        return self._sessions[key]

    def update(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        """One batch. Integer (or bool) predictions are class labels, as `modelc eval` takes them."""
        y_pred = np.asarray(y_pred)
        if y_pred.ndim == 0 or len(y_pred) == 0:
            return  # an empty batch is a no-op
        y_true = np.asarray(y_true)
        if y_true.dtype.kind not in "biuf":
            raise user_error(f"y_true has dtype {y_true.dtype}; metrics need numbers")
        y_true = y_true.astype(y_pred.dtype if y_pred.dtype.kind == "f" else np.float64, copy=False)
        if len(y_true) != len(y_pred):
            raise user_error(f"y_true has {len(y_true)} rows, y_pred {len(y_pred)}")
        check_labels(self._set.label_specs, y_true, self._rows)
        feeds = {"y_true": y_true, "y_pred": y_pred}
        weighted: bool | tuple = False
        if sample_weight is not None:
            feeds["sample_weight"] = row_weights(sample_weight, len(y_pred), "sample_weight")
            weighted = feeds["sample_weight"].shape[1:]
        session = self._session(y_true, y_pred, weighted)
        for lo in range(0, len(y_pred), CHUNK_ROWS):  # the graph's counts are exact for this many rows
            self._set.accumulate(session.run(feeds if len(y_pred) <= CHUNK_ROWS else
                                             {k: v[lo:lo + CHUNK_ROWS] for k, v in feeds.items()}))
        self._rows += len(y_pred)

    def merge(self, other: "Metric") -> "Metric":
        self._set.merge(other._set)
        return self

    def result(self) -> Any:
        if not self._set.plans:
            warnings.warn(f"metric {self.spec}: result() before any update", RuntimeWarning, stacklevel=2)
            return float("nan")
        return self._set.results()[self.spec]

    def reset(self) -> None:
        self._set.reset()
        self._rows = 0

    def named_states(self) -> list[tuple[MetricPlan, dict[str, np.ndarray]]]:
        return self._set.named_states()

    def state_dict(self) -> dict[str, np.ndarray]:
        return self._set.state_dict()

    def load_state_dict(self, states: dict[str, np.ndarray]) -> None:
        self._set.load_state_dict(states)
