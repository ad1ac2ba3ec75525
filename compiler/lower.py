"""Checked AST -> ir.Model: instantiates layers, checks dtypes and shapes, lowers to ONNX-level nodes.

Shapes depend on hyperparameter values (`dense(units)`), which are known only
once a layer is applied, so shape checking and lowering share this one walk.
Name-level checks that need no values run before it, in check.py.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from . import ir
from . import nodes as N
from .limits import WEIGHTS_SIZE
from .nodes import MAX_REPEAT
from .arguments import bind_arguments
from .builder import BlockBuilder
from .initializers import INITIALIZERS, bind_initializer
from .layers import BUILTIN_LAYERS
from .layers_base import REQUIRED, BuiltinLayer, LayerContext
from .operators import binary, unary
from .functions import CONSTANTS, FUNCTIONS, call_function
from .source import MAX_ERRORS, CheckError, Diagnostic, Span, did_you_mean, error
from .types import DTYPES, FLOAT_DTYPES, INT64_MAX, Dim, TensorType, show_dim
from .values import POISON, DtypeName, LayerVal, article, describe, is_tensor



@dataclass
class Env:
    values: dict[str, Any] = field(default_factory=dict)
    dtype: str = "float32"        # dtype of `param`s declared without one
    sizeless: frozenset[str] = frozenset()   # dimensions whose size is known only at run time (`batch`)


def canonical(v: Any) -> Any:
    """A hashable form of a hyperparameter value, for the block cache key."""
    if isinstance(v, LayerVal):
        return ("layer", id(v.layer), tuple((k, canonical(x)) for k, x in v.hparams), v.explicit_name)
    if isinstance(v, list):
        return ("list", tuple(canonical(x) for x in v))
    return (type(v).__name__, v)


class Lowerer:
    def __init__(self, definitions: dict[str, N.Definition], float_dtype: str | None = None,
                 opset: int | None = None, keep32: frozenset[str] = frozenset(),
                 max_weights: int | str | None = None):
        self.definitions = definitions
        self.max_weights = WEIGHTS_SIZE.value(max_weights)   # bytes; None: MODELC_MAX_WEIGHTS_SIZE or 16 GB
        self.keep32 = keep32            # weight paths float16 cannot hold, kept float32 (builder.py)
        self.misfits: list[tuple[str, str]] = []
        self.opset = opset              # compile --opset, for lowerings that pick ops by it; None: the default
        self.float_dtype = float_dtype  # compile --dtype: float32 model inputs become this
        self.context = LayerContext(self.apply_layer, float_dtype, complete=self.complete)
        self.cache: dict[tuple, ir.Block] = {}
        self.building: list[str] = []
        self.main: BlockBuilder | None = None

    # --- models ------------------------------------------------------------
    def lower_model(self, d: N.Definition) -> ir.Model:
        inputs = [ir.Value(p.name, self.model_input_type(p)) for p in d.inputs]
        b = self.main = BlockBuilder(d.name, inputs, d.loc, self.opset)
        b.keep32, b.misfits, b.max_weights = self.keep32, self.misfits, self.max_weights
        env = Env({v.name: v for v in inputs},
                  sizeless=frozenset(d for v in inputs for d in v.type.shape if isinstance(d, str)))
        diagnostics: list[Diagnostic] = []
        returned = self.run_body(d, env, b, diagnostics)
        if diagnostics:
            raise CheckError(diagnostics[:MAX_ERRORS])
        ret = next(s for s in d.body if isinstance(s, N.Return))
        names, unnamed = [], 0
        for expr in ret.values:
            if isinstance(expr, N.Name):
                name = expr.id
            else:
                name = "output" if unnamed == 0 else f"output_{unnamed}"
                unnamed += 1
            if name in names:
                raise error(expr.loc, f"output name '{name}' is returned twice")
            names.append(name)
        outputs = []
        for name, value in zip(names, returned):
            if value.name == name:  # a model input returned as it is
                outputs.append(value)
                continue
            b.block.items.append(ir.Node("Identity", [value.name], [name], {}, name, ret.loc))
            outputs.append(ir.Value(name, value.type))
        b.block.outputs = outputs
        return ir.Model(d.name, b.block, names, b.block.layers, misfits=self.misfits)

    def model_input_type(self, p: N.Param) -> TensorType:
        spec = p.type
        if not isinstance(spec, N.TensorTypeSpec) or spec.dtype is None:
            raise error(p.loc, f"model input '{p.name}' needs a dtype and shape, such as float32[batch, 8]")
        dims: list[Dim] = []
        for dim in spec.dims:
            if dim.value == "...":
                raise error(dim.loc, f"model input '{p.name}' needs every dimension, not '...'")
            dims.append(dim.value)
        dtype = self.float_dtype if self.float_dtype and spec.dtype == "float32" else spec.dtype
        return TensorType(dtype, tuple(dims))

    # --- bodies ------------------------------------------------------------
    def run_body(self, d: N.Definition, env: Env, b: BlockBuilder,
                 diagnostics: list[Diagnostic] | None = None) -> list[ir.Value]:
        """Run the statements; with `diagnostics`, a failed statement is recorded and poisons its name."""
        for stmt in d.body:
            try:
                if isinstance(stmt, N.Return):
                    values = [self.eval(v, env, b) for v in stmt.values]
                    if any(v is POISON for v in values):
                        return []
                    for expr, v in zip(stmt.values, values):
                        if not is_tensor(v):
                            raise error(expr.loc, f"{d.name} must return tensors, got {describe(v)}")
                    return values
                if isinstance(stmt, N.Assign):
                    env.values[stmt.name] = self.eval(stmt.value, env, b)
                elif isinstance(stmt, N.ParamDecl):
                    env.values[stmt.name] = self.declare_param(stmt, env, b)
            except CheckError as err:
                if diagnostics is None:
                    raise
                diagnostics.extend(err.diagnostics)
                if len(diagnostics) >= MAX_ERRORS:
                    return []
                if isinstance(stmt, (N.Assign, N.ParamDecl)):
                    env.values[stmt.name] = POISON
        return []

    def declare_param(self, stmt: N.ParamDecl, env: Env, b: BlockBuilder) -> ir.Value:
        shape = []
        for dim in stmt.type.dims:
            value = dim.value if isinstance(dim.value, int) else env.values.get(dim.value)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                what = "'...'" if dim.value == "..." else f"'{dim.value}'"
                raise error(dim.loc, f"param '{stmt.name}' needs a known size here; {what} is not an int "
                                     "hyperparameter or a dimension bound by an input")
            shape.append(value)
        init = self.eval(stmt.init, env, b)
        if not isinstance(init, ir.InitSpec):
            raise error(stmt.init.loc, f"param '{stmt.name}' needs an initializer such as glorot_uniform, "
                                       f"got {describe(init)}")
        return b.weight(stmt.name, TensorType(stmt.type.dtype or env.dtype, tuple(shape)), init, stmt.loc)

    # --- expressions -------------------------------------------------------
    def eval(self, e: N.Expr, env: Env, b: BlockBuilder) -> Any:
        return getattr(self, f"eval_{type(e).__name__}")(e, env, b)

    def eval_Number(self, e: N.Number, env: Env, b: BlockBuilder) -> Any:
        return e.value

    def eval_String(self, e: N.String, env: Env, b: BlockBuilder) -> Any:
        return e.value

    def eval_Bool(self, e: N.Bool, env: Env, b: BlockBuilder) -> Any:
        return e.value

    def eval_ListExpr(self, e: N.ListExpr, env: Env, b: BlockBuilder) -> Any:
        return [self.eval(i, env, b) for i in e.items]

    def eval_Name(self, e: N.Name, env: Env, b: BlockBuilder) -> Any:
        return self.lookup(e.id, e.loc, env)

    def lookup(self, name: str, loc: Span, env: Env) -> Any:
        """The value of a name check.py has resolved: local, then the definitions, then the built-in tables."""
        if name in env.values:
            return env.values[name]
        if name in self.definitions and self.definitions[name].kind == "layer":
            return LayerVal(self.definitions[name])
        if name in self.definitions and name not in BUILTIN_LAYERS and name not in FUNCTIONS:
            raise error(loc, f"'{name}' is a {self.definitions[name].kind}, not a layer")
        if name in BUILTIN_LAYERS:
            return LayerVal(BUILTIN_LAYERS[name])
        if name in INITIALIZERS:
            return ir.InitSpec(name)
        if name in DTYPES:
            return DtypeName(name)
        if name in CONSTANTS:
            return CONSTANTS[name]
        if name in FUNCTIONS:
            raise error(loc, f"'{name}' is a function: call it, as {name}(x)")
        if name in env.sizeless:
            raise error(loc, f"'{name}' is a dimension whose size is known only when the model runs: it has no value "
                             "here (a dimension of fixed size, or an int hyperparameter, does)")
        raise error(loc, f"internal error: '{name}' has no value here, yet passed the checks")

    def eval_Binary(self, e: N.Binary, env: Env, b: BlockBuilder) -> Any:
        left, right = self.eval(e.left, env, b), self.eval(e.right, env, b)
        if left is POISON or right is POISON:
            return POISON
        return binary(b, e.op, left, right, e.loc)

    def eval_Unary(self, e: N.Unary, env: Env, b: BlockBuilder) -> Any:
        operand = self.eval(e.operand, env, b)
        return POISON if operand is POISON else unary(b, e.op, operand, e.loc)

    def eval_args(self, args: list[N.Expr], kwargs: list[N.Keyword], env: Env,
                  b: BlockBuilder) -> tuple[list[Any], dict[str, Any]]:
        values = [self.eval(a, env, b) for a in args]
        return values, {k.name: self.eval(k.value, env, b) for k in kwargs}  # check.py refuses a repeated one

    def eval_Call(self, e: N.Call, env: Env, b: BlockBuilder) -> Any:
        args, kwargs = self.eval_args(e.args, e.kwargs, env, b)
        if any(v is POISON for v in [*args, *kwargs.values()]):
            return POISON
        if isinstance(e.func, N.Name) and self.is_function(e.func.id, env):
            as_layer = e.func.id in BUILTIN_LAYERS and ("name" in kwargs or not any(is_tensor(a) for a in args))
            if not as_layer:  # relu(x) is the function; relu(x, name="r") and relu(name="r") the layer
                return call_function(b, e.func.id, args, kwargs, e.loc)
        func = self.eval(e.func, env, b)
        if func is POISON:
            return POISON
        if isinstance(func, ir.InitSpec):
            return bind_initializer(func.name, args, kwargs, e.loc)
        if not isinstance(func, LayerVal):
            raise error(e.func.loc, f"cannot call {describe(func)}; expected a layer or a function")
        return self.call_layer(func, args, kwargs, b, e.loc)

    def is_function(self, name: str, env: Env) -> bool:
        """A built-in function, unless a local name or a user layer shadows it (metrics do not)."""
        shadow = self.definitions.get(name)
        return name in FUNCTIONS and name not in env.values and (shadow is None or shadow.kind != "layer")

    def call_layer(self, lv: LayerVal, args: list[Any], kwargs: dict[str, Any], b: BlockBuilder,
                   loc: Span) -> Any:
        """`L(x, k=v)` applies L to tensors; `L(4, k=v)` binds hyperparameters."""
        name = kwargs.pop("name", None)
        if name is not None and not isinstance(name, str):
            raise error(loc, f"name= must be a string, got {describe(name)}")
        explicit = name if name is not None else lv.explicit_name
        if args and all(is_tensor(a) for a in args):
            bound = self.bind(lv, [], kwargs, loc, explicit)
            return self.apply_layer(bound, args, b, loc)
        if any(is_tensor(a) for a in args):
            raise error(loc, f"{lv.name}(): give tensors first and only as inputs, hyperparameters after")
        return self.bind(lv, args, kwargs, loc, explicit)

    def eval_Pipe(self, e: N.Pipe, env: Env, b: BlockBuilder) -> Any:
        x = self.eval(e.value, env, b)
        if x is POISON:
            return POISON
        if not is_tensor(x) and not (isinstance(x, tuple) and all(is_tensor(v) for v in x)):
            raise error(e.value.loc, f"only a tensor can be piped into a layer, got {describe(x)}")
        return self.apply_stage(e.stage, x, env, b)

    def apply_stage(self, st: N.Stage, x: Any, env: Env, b: BlockBuilder) -> Any:
        """Apply a stage to a tensor, or to the tensors a multi-output layer returned (its inputs, in order)."""
        if isinstance(st, N.Repeat):
            count, first = self.repeat_count(st.count, env, b), len(b.block.layers)
            if not st.shared:
                for _ in range(count):
                    x = self.apply_stage(st.stage, x, env, b)
            else:
                lv = self.stage_layer(st.stage, x, env, b)
                if not isinstance(lv, LayerVal):
                    raise error(st.stage.loc, "repeat shared needs a layer, not a function")
                instance = b.instance_name(lv.name, lv.explicit_name, st.loc)
                for _ in range(count):
                    x = self.apply_layer(lv, _inputs(x), b, st.stage.loc, instance)
            if not b.prefix:
                b.block.repeats.append(ir.RepeatGroup(st.loc, count, st.shared,
                                                      [r.path for r in b.block.layers[first:]]))
            return x
        stage = self.stage_layer(st, x, env, b)
        if isinstance(stage, LayerVal):
            return self.apply_layer(stage, _inputs(x), b, st.loc)
        return stage  # a built-in function, already applied to x

    def repeat_count(self, e: N.Expr, env: Env, b: BlockBuilder) -> int:
        """A repeat count's value here, where the hyperparameters it reads are bound: an int from 1 to the limit."""
        count = self.eval(e, env, b)
        if count is POISON:
            raise CheckError([])
        if not isinstance(count, int) or isinstance(count, bool):
            got = count if isinstance(count, float) else describe(count)
            raise error(e.loc, f"repeat count must be a constant integer, got {got}")
        if not 1 <= count <= MAX_REPEAT:
            raise error(e.loc, f"repeat count must be at least 1, got {count}" if count < 1 else
                        f"repeat count {count} is more than the limit of {MAX_REPEAT}")
        return count

    def stage_layer(self, st: N.Stage, x: ir.Value, env: Env, b: BlockBuilder) -> Any:
        """The layer a stage names, bound; or, for a built-in function, its result on x."""
        if isinstance(st, N.Repeat):
            raise error(st.loc, "write `repeat N` once per stage")
        args, kwargs = self.eval_args(st.args or [], st.kwargs, env, b)
        if any(v is POISON for v in [*args, *kwargs.values()]):
            raise CheckError([])
        if self.is_function(st.name, env) and (st.name not in BUILTIN_LAYERS or any(is_tensor(a) for a in args)):
            return call_function(b, st.name, [*_inputs(x), *args], kwargs, st.loc)
        lv = self.lookup(st.name, st.loc, env)
        if lv is POISON:
            raise CheckError([])
        if not isinstance(lv, LayerVal):
            what = describe(lv)
            raise error(st.loc, f"'{st.name}' is {'a ' + what if is_tensor(lv) else what}; "
                                "a stage must be a layer or a function")
        if st.args is None and not st.kwargs:
            return lv
        return self.call_layer(lv, args, kwargs, b, st.loc)

    def eval_Index(self, e: N.Index, env: Env, b: BlockBuilder) -> Any:
        x = self.eval(e.target, env, b)
        if x is POISON:
            return POISON
        if isinstance(x, tuple):  # the outputs of a multi-output layer: pick one
            i = self.index_int(e.items[0], env, b) if len(e.items) == 1 and not isinstance(
                e.items[0], (N.Slice, N.EllipsisIndex)) else None
            if i is None or not -len(x) <= i < len(x):
                raise error(e.loc, f"this layer returns {len(x)} tensors; pick one with [0] .. [{len(x) - 1}]")
            return x[i]
        if not is_tensor(x):
            raise error(e.target.loc, f"only tensors can be indexed, got {describe(x)}")
        return self.lower_index(x, e, env, b)

    def lower_index(self, x: ir.Value, e: N.Index, env: Env, b: BlockBuilder) -> ir.Value:
        items = e.items
        if sum(isinstance(i, N.EllipsisIndex) for i in items) > 1:
            raise error(e.loc, "an index may hold one '...'")
        real = [i for i in items if not isinstance(i, N.EllipsisIndex)]
        if len(real) > x.type.rank:
            raise error(e.loc, f"too many indices ({len(real)}) for {x.type}")
        if any(isinstance(i, N.EllipsisIndex) for i in items):
            at = next(k for k, i in enumerate(items) if isinstance(i, N.EllipsisIndex))
            axes = list(range(at)) + list(range(x.type.rank - (len(items) - at - 1), x.type.rank))
        else:
            axes = list(range(len(real)))
        starts, ends, steps, sliced, squeeze = [], [], [], [], []
        shape = list(x.type.shape)
        for axis, item in zip(axes, real):
            dim = shape[axis]
            if isinstance(item, N.Slice):
                start, stop, step = (self.index_int(p, env, b) for p in (item.start, item.stop, item.step))
                step = 1 if step is None else step
                if step == 0:
                    raise error(item.loc, "slice step cannot be zero")
                if start is None and stop is None and step == 1:
                    continue
                default_start, default_stop = (0, INT64_MAX) if step > 0 else (INT64_MAX, -INT64_MAX - 1)
                starts.append(default_start if start is None else start)
                ends.append(default_stop if stop is None else stop)
                shape[axis] = len(range(dim)[slice(start, stop, step)]) if isinstance(dim, int) else None
            else:
                i = self.index_int(item, env, b)
                if isinstance(dim, int) and not -dim <= i < dim:
                    raise error(item.loc, f"index {i} is out of range for axis {axis} of size {dim}")
                starts.append(i)
                ends.append(INT64_MAX if i in (-1, INT64_MAX) else i + 1)
                step = 1
                squeeze.append(axis)
            sliced.append(axis)
            steps.append(step)
        if not sliced:
            return x
        out = b.node("Slice", [x, b.const(starts, "int64"), b.const(ends, "int64"), b.const(sliced, "int64"),
                               b.const(steps, "int64")],
                     TensorType(x.type.dtype, tuple(1 if a in squeeze else d for a, d in enumerate(shape))), e.loc)
        if squeeze:
            kept = tuple(d for a, d in enumerate(shape) if a not in squeeze)
            out = b.node("Squeeze", [out, b.const(squeeze, "int64")], TensorType(x.type.dtype, kept), e.loc)
        return out

    def index_int(self, e: N.Expr | None, env: Env, b: BlockBuilder) -> int | None:
        if e is None:
            return None
        v = self.eval(e, env, b)
        if not isinstance(v, int) or isinstance(v, bool):
            raise error(e.loc, f"indices must be ints, got {describe(v)}")
        return v

    # --- layers ------------------------------------------------------------
    def signature(self, layer: N.Definition | BuiltinLayer) -> list[tuple[str, str, Any]]:
        """(name, kind, default) per hyperparameter; default REQUIRED or an N.Expr for user layers."""
        if isinstance(layer, BuiltinLayer):
            return layer.hparams
        out = []
        for p in layer.hparams:
            kind = p.type.name if isinstance(p.type, N.ScalarType) else "any"
            out.append((p.name, kind, REQUIRED if p.default is None else p.default))
        return out

    def bind(self, lv: LayerVal, args: list[Any], kwargs: dict[str, Any], loc: Span,
             explicit: str | None) -> LayerVal:
        sig = self.signature(lv.layer)
        given = bind_arguments(lv.name, [n for n, _, _ in sig], args, kwargs, loc, noun="hyperparameter")
        bound = {**dict(lv.hparams), **given}
        for name, kind, _ in sig:
            if name in bound:
                bound[name] = self.coerce(bound[name], kind, f"{lv.name} hyperparameter '{name}'", loc)
        return LayerVal(lv.layer, tuple(bound.items()), explicit)

    def coerce(self, value: Any, kind: str, what: str, loc: Span) -> Any:
        if kind == "layer" and isinstance(value, str):  # activation="tanh"
            value = self.layer_named(value, loc)
        ok = {
            "int": isinstance(value, int) and not isinstance(value, bool),
            "float": isinstance(value, (int, float)) and not isinstance(value, bool),
            "bool": isinstance(value, bool),
            "str": isinstance(value, str),
            "layer": isinstance(value, LayerVal),
            "initializer": isinstance(value, ir.InitSpec),
            "list": isinstance(value, list),
            "tensor": is_tensor(value),      # a tensor given by keyword: attention_mask=mask
        }.get(kind, not is_tensor(value))
        if not ok:
            raise error(loc, f"{what} expects {article(kind)} {kind}, got {describe(value)}")
        return float(value) if kind == "float" else value

    def layer_named(self, name: str, loc: Span) -> LayerVal:
        if name in self.definitions and self.definitions[name].kind == "layer":
            return LayerVal(self.definitions[name])
        if name in BUILTIN_LAYERS:
            return LayerVal(BUILTIN_LAYERS[name])
        layers = [*BUILTIN_LAYERS, *(n for n, d in self.definitions.items() if d.kind == "layer")]
        raise error(loc, f"unknown layer '{name}'{did_you_mean(name, layers)}")

    def complete(self, lv: LayerVal, loc: Span) -> dict[str, Any]:
        """All hyperparameters: bound ones, then defaults (a default may use earlier ones)."""
        bound = dict(lv.hparams)
        env = Env()
        for name, kind, default in self.signature(lv.layer):
            if name not in bound:
                if default is REQUIRED:
                    raise error(loc, f"{lv.name} needs its hyperparameter '{name}'")
                value = self.eval(default, env, BlockBuilder("defaults", [])) \
                    if not isinstance(lv.layer, BuiltinLayer) else default
                bound[name] = self.coerce(value, kind, f"{lv.name} hyperparameter '{name}'", loc) \
                    if value is not None else None
            env.values[name] = bound[name]
        return bound

    def apply_layer(self, lv: LayerVal, inputs: list[Any], b: BlockBuilder, loc: Span,
                    instance: str | None = None) -> ir.Value:
        if any(x is POISON for x in inputs):
            return POISON  # type: ignore[return-value]
        hp = self.complete(lv, loc)
        layer = lv.layer
        if isinstance(layer, BuiltinLayer):
            fewest, most = layer.inputs
            if len(inputs) < fewest or most is not None and len(inputs) > most:
                raise error(loc, f"{layer.name} takes {_count_phrase(fewest, most)}, got {len(inputs)}")
            name = instance or b.instance_name(layer.name, lv.explicit_name, loc)
            with b.scope(name):
                out = layer.lower(self.context, b, inputs, hp, loc)
        else:
            name = instance or b.instance_name(layer.name, lv.explicit_name, loc)
            out = self.apply_user_layer(layer, hp, inputs, name, b, loc)
        if not b.prefix and name not in b.row_names:   # each block's instances: the model's are the summary
            b.row_names.add(name)
            count = sum(_size(w.type) for w in b.weights_under(name))
            b.block.layers.append(ir.LayerRow(name, layer.name, out.type if is_tensor(out) else None, count,
                                              out.name if is_tensor(out) else ""))
        return out

    def apply_user_layer(self, d: N.Definition, hp: dict[str, Any], inputs: list[Any], name: str,
                         b: BlockBuilder, loc: Span) -> ir.Value:
        if len(inputs) != len(d.inputs):
            raise error(loc, f"{d.name} takes {len(d.inputs)} input{'s' * (len(d.inputs) != 1)}, got {len(inputs)}")
        symbols: dict[str, Dim] = {}
        for p, x in zip(d.inputs, inputs):
            self.match_input(d, p, x, hp, symbols, loc)
        under = b.path(name) + "."  # the instance's weights kept float32, by their path in its block
        keep32 = frozenset(p[len(under):] for p in b.keep32 if p.startswith(under))
        key = (id(d), tuple((k, canonical(v)) for k, v in hp.items()), tuple(x.type for x in inputs), keep32)
        block = self.cache.get(key)
        if block is None:
            block = self.cache[key] = self.build_block(d, hp, inputs, symbols, loc, keep32)
        weights = [b.weight(f"{name}.{w.name}", w.type, w.init, w.loc).name for w in block.weights]
        outs = b.call(block, "/".join([*b.prefix, name]), inputs, weights, loc)
        return outs[0] if len(outs) == 1 else tuple(outs)  # type: ignore[return-value]

    def build_block(self, d: N.Definition, hp: dict[str, Any], inputs: list[ir.Value],
                    symbols: dict[str, Dim], loc: Span, keep32: frozenset[str] = frozenset()) -> ir.Block:
        if d.name in self.building:
            raise error(loc, f"layer '{d.name}' uses itself: " + " -> ".join([*self.building, d.name]))
        formals = [ir.Value(p.name, x.type) for p, x in zip(d.inputs, inputs)]
        bb = BlockBuilder(d.name, formals, d.loc, self.opset)
        bb.keep32, bb.misfits = keep32, self.misfits
        floats = [x.type.dtype for x in inputs if x.type.dtype in FLOAT_DTYPES]
        env = Env({k: v for k, v in symbols.items() if isinstance(v, int)}, floats[0] if floats else "float32",
                  frozenset(k for k, v in symbols.items() if not isinstance(v, int)))
        env.values.update(hp)
        env.values.update({f.name: f for f in formals})
        self.building.append(d.name)
        try:
            outputs = self.run_body(d, env, bb)
        finally:
            self.building.pop()
        return bb.finish(outputs)

    def match_input(self, d: N.Definition, p: N.Param, x: Any, hp: dict[str, Any],
                    symbols: dict[str, Dim], loc: Span) -> None:
        if not is_tensor(x):
            raise error(loc, f"{d.name} input '{p.name}' must be a tensor, got {describe(x)}")
        spec = p.type
        if not isinstance(spec, N.TensorTypeSpec):  # untyped (a scalar type: check.py has reported it)
            return
        dims = [dim.value for dim in spec.dims]
        fixed = dims[1:] if dims and dims[0] == "..." else dims
        shape = x.type.shape
        ok = (len(shape) >= len(fixed)) if len(fixed) != len(dims) else (len(shape) == len(fixed))
        ok = ok and (spec.dtype is None or spec.dtype == x.type.dtype)
        tail = shape[len(shape) - len(fixed):] if fixed else ()
        trial = dict(symbols)
        for want, got in zip(fixed, tail) if ok else ():
            if isinstance(want, str) and want in hp and isinstance(hp[want], int):
                want = hp[want]
            if isinstance(want, int):
                ok = ok and (got is None or got == want)
            elif want in trial:
                ok = ok and (got is None or trial[want] is None or trial[want] == got)
            else:
                trial[want] = got
        if not ok:
            shown = [str(hp[w]) if isinstance(w, str) and isinstance(hp.get(w), int) else str(w) for w in dims]
            which = f" '{p.name}'" if len(d.inputs) > 1 else ""
            raise error(loc, f"{d.name} expects input{which} {spec.dtype or ''}[{', '.join(shown)}], "
                             f"got {x.type.dtype if spec.dtype else ''}[{', '.join(show_dim(s) for s in shape)}]")
        symbols.update(trial)


def _count_phrase(fewest: int, most: int | None) -> str:
    """How many inputs a layer takes, in words: "one input", "2 or 3 inputs", "at least one input"."""
    if most is None:
        return "at least one input" if fewest == 1 else f"at least {fewest} inputs"
    if fewest == most:
        return "one input" if fewest == 1 else f"{fewest} inputs"
    return f"{fewest} to {most} inputs" if most > fewest + 1 else f"{fewest} or {most} inputs"


def _inputs(x: Any) -> list[Any]:
    return list(x) if isinstance(x, tuple) else [x]


def _size(t: TensorType) -> int:
    n = 1
    for d in t.shape:
        n *= d if isinstance(d, int) else 0
    return n


def source_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
