"""Golden diagnostics: bad programs and the exact text `modelc check` prints for each.

Every case asserts the full rendering (`FILE:LINE:COL: error: MESSAGE`, the source line, the caret
span), so a change to any message, position or span shows up here as a diff to review. The cases
at the end were bugs found while writing this file; they stay as regression tests.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import modelc

MODELC = str(Path(sys.executable).parent / "modelc")


def rendered(text: str, file: str = "t.model") -> str:
    return "\n".join(d.render() for d in modelc.check_source(text, file=file))


def run_modelc(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([MODELC, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


# (id, program, everything check_source renders for it)
CASES = [
    # --- syntax: the first error stops the parse; it says what would have been accepted
    ('missing_close_paren', """\
model m(x: float32[batch, 8]) {
    y = exp(x
    return y
}
""",
     """\
t.model:3:5: error: unexpected 'return'; expected one of ')', ',', '=', an operator; the '(' at line 2, column 12 is not closed
    return y
    ^^^^^^"""),
    ('unexpected_operator', """\
model m(x: float32[batch, 8]) {
    y = x + * 2
    return y
}
""",
     """\
t.model:2:13: error: unexpected '*'; expected an expression
    y = x + * 2
            ^"""),
    ('garbage_character', """\
model m(x: float32[batch, 8]) {
    y = x $ 2
    return y
}
""",
     """\
t.model:2:11: error: unexpected character '$'; expected one of ';', 'param', 'return', 'state', '}', a name, an operator
    y = x $ 2
          ^"""),
    ('non_ascii_character', """\
model m(x: float32[batch, 8]) {
    return x × 2
}
""",
     """\
t.model:2:14: error: unexpected character '×'; expected one of ',', ';', 'param', 'return', 'state', '}', a name, an operator
    return x × 2
             ^"""),
    ('unterminated_string', """\
model m(x: float32[batch, 8]) {
    return x -> dense(4, name="d1)
}
""",
     """\
t.model:2:31: error: unterminated string; a string ends with '"' on the line where it starts
    return x -> dense(4, name="d1)
                              ^^^^"""),
    ('unknown_string_escape', 'model m(x: float32[batch, 8]) {\n    return x -> dense(4, name="a\\qb")\n}\n',
     't.model:2:33: error: unknown escape \'\\q\' in a string; write \'\\\\\' for a backslash\n    return x -> dense(4, name="a\\qb")\n                                ^^'),
    ('missing_assign', """\
model m(x: float32[batch, 8]) {
    y exp(x)
    return y
}
""",
     """\
t.model:2:7: error: unexpected name 'exp'; expected '='
    y exp(x)
      ^^^"""),
    ('missing_closing_brace', """\
model m(x: float32[batch, 8]) {
    return x
""",
     """\
t.model:2:13: error: unexpected end of file; expected one of ',', ';', 'param', 'return', 'state', '}', a name; the '{' at line 1, column 31 is not closed
    return x
            ^"""),
    ('unclosed_index_bracket', """\
model m(x: float32[batch, 8]) {
    return x[:, 0
}
""",
     """\
t.model:3:1: error: unexpected '}'; expected one of ',', ':', ']'; the '[' at line 2, column 13 is not closed
}
^"""),
    ('unclosed_signature_paren', """\
model m(x: float32[batch, 8] {
    return x
}
""",
     """\
t.model:1:30: error: unexpected '{'; expected one of ')', ',', '='; the '(' at line 1, column 8 is not closed
model m(x: float32[batch, 8] {
                             ^"""),
    ('missing_comma', """\
model m(x: float32[batch, 8]) {
    return x -> dense(4 5)
}
""",
     """\
t.model:2:25: error: unexpected integer '5'; expected one of ')', ',', an operator; the '(' at line 2, column 22 is not closed
    return x -> dense(4 5)
                        ^"""),
    ('dangling_arrow', """\
model m(x: float32[batch, 8]) {
    return x -> dense(4) ->
}
""",
     """\
t.model:3:1: error: unexpected '}'; expected 'repeat' or a name
}
^"""),
    ('stage_is_a_number', """\
model m(x: float32[batch, 8]) {
    return x -> 3
}
""",
     """\
t.model:2:17: error: unexpected integer '3'; expected 'repeat' or a name
    return x -> 3
                ^"""),
    ('chained_comparison', """\
model m(x: float32[batch, 8]) {
    return x < x < x
}
""",
     """\
t.model:2:18: error: unexpected '<': comparisons do not chain; write (a < b) and (b < c)
    return x < x < x
                 ^"""),
    ('positional_after_keyword', """\
model m(x: float32[batch, 8]) {
    return x -> dense(units=4, 3)
}
""",
     """\
t.model:2:32: error: positional argument follows keyword argument
    return x -> dense(units=4, 3)
                               ^"""),
    ('repeat_count_not_integer', """\
model m(x: float32[batch, 8]) {
    return x -> repeat 2.5 dense(4)
}
""",
     """\
t.model:2:24: error: repeat count must be an integer, got 2.5
    return x -> repeat 2.5 dense(4)
                       ^^^"""),
    ('dimension_not_integer', """\
model m(x: float32[batch, 8.5]) {
    return x
}
""",
     """\
t.model:1:27: error: a dimension is an integer, a name or '...', got 8.5
model m(x: float32[batch, 8.5]) {
                          ^^^"""),
    ('integer_too_large', """\
model m(x: float32[batch, 8]) {
    return x[99999999999999999999999]
}
""",
     """\
t.model:2:14: error: integer 99999999999999999999999 is too large; the largest is 9223372036854775807
    return x[99999999999999999999999]
             ^^^^^^^^^^^^^^^^^^^^^^^"""),
    ('not_a_definition', """\
def m(x):
    return x
""",
     """\
t.model:1:1: error: unexpected name 'def'; expected one of 'import', 'layer', 'metric', 'model', end of file
def m(x):
^^^"""),
    ('param_without_shape', """\
layer l(x) {
    param w: float32 = zeros
    return x
}
""",
     """\
t.model:2:14: error: a param needs a shape such as [n, units], got 'float32'
    param w: float32 = zeros
             ^^^^^^^"""),
    ('keyword_in_statement_position', """\
model m(x: float32[batch, 8]) {
    param = relu(x)
    return param
}
""",
     """\
t.model:2:11: error: unexpected '='; expected a name
    param = relu(x)
          ^"""),
    ('truncated_definition', """\
layer""",
     """\
t.model:1:6: error: unexpected end of file; expected a name
layer
     ^"""),
    ('tab_indented_line', 'model m(x: float32[batch, 8]) {\n\treturn\tz\n}\n',
     "t.model:2:9: error: undefined name 'z'\n\treturn\tz\n\t      \t^"),
    ('crlf_line_endings', 'model m(x: float32[batch, 8]) {\r\n    return z\r\n}\r\n',
     """\
t.model:2:12: error: undefined name 'z'
    return z
           ^"""),
    ('form_feed_in_comment', '# a\x0c comment\nmodel m(x: float32[batch, 8]) {\n    return z\n}\n',
     """\
t.model:3:12: error: undefined name 'z'
    return z
           ^"""),
    # --- names: checked in every definition, used or not; all errors reported
    ('undefined_name', """\
model m(x: float32[batch, 8]) {
    y = relu(z)
    return y
}
""",
     """\
t.model:2:14: error: undefined name 'z'
    y = relu(z)
             ^"""),
    ('undefined_name_did_you_mean', """\
model m(x: float32[batch, 8]) {
    hidden = relu(x)
    return hiden
}
""",
     """\
t.model:3:12: error: undefined name 'hiden'; did you mean 'hidden'?
    return hiden
           ^^^^^"""),
    ('name_bound_twice', """\
model m(x: float32[batch, 8]) {
    y = relu(x)
    y = exp(y)
    return y
}
""",
     """\
t.model:3:5: error: 'y' is already bound at line 2; names are bound once
    y = exp(y)
    ^^^^^^^^^^"""),
    ('input_rebound', """\
model m(x: float32[batch, 8]) {
    x = relu(x)
    return x
}
""",
     """\
t.model:2:5: error: 'x' is already bound at line 1; names are bound once
    x = relu(x)
    ^^^^^^^^^^^"""),
    ('duplicate_input', """\
model m(x: float32[batch, 8], x: float32[batch, 8]) {
    return x
}
""",
     """\
t.model:1:31: error: 'x' is already bound at line 1; names are bound once
model m(x: float32[batch, 8], x: float32[batch, 8]) {
                              ^^^^^^^^^^^^^^^^^^^^"""),
    ('duplicate_hyperparameter', """\
layer l(units: int, units: int)(x) = x
""",
     """\
t.model:1:21: error: 'units' is already bound at line 1; names are bound once
layer l(units: int, units: int)(x) = x
                    ^^^^^^^^^^"""),
    ('unknown_layer', """\
model m(x: float32[batch, 8]) {
    y = x -> dens(4)
    return y
}
""",
     """\
t.model:2:14: error: undefined name 'dens'; did you mean 'dense'?
    y = x -> dens(4)
             ^^^^"""),
    ('unknown_function', """\
model m(x: float32[batch, 8]) {
    y = expp(x)
    return y
}
""",
     """\
t.model:2:9: error: undefined name 'expp'; did you mean 'exp'?
    y = expp(x)
        ^^^^"""),
    ('unknown_activation', """\
model m(x: float32[batch, 8]) {
    y = x -> dense(4, activation=rellu)
    return y
}
""",
     """\
t.model:2:34: error: undefined name 'rellu'; did you mean 'relu'?
    y = x -> dense(4, activation=rellu)
                                 ^^^^^"""),
    ('unknown_initializer', """\
layer l(x: [n, k]) {
    param w: [k, 4] = glorot_unifrom
    return x @ w
}
""",
     """\
t.model:2:23: error: unknown initializer 'glorot_unifrom'; expected one of zeros, ones, constant, glorot_uniform, glorot_normal, he_uniform, he_normal, lecun_uniform, lecun_normal, random_normal, random_uniform, truncated_normal, orthogonal; did you mean 'glorot_uniform'?
    param w: [k, 4] = glorot_unifrom
                      ^^^^^^^^^^^^^^"""),
    ('unknown_dtype', """\
model m(x: flaot32[batch, 8]) {
    return x
}
""",
     """\
t.model:1:12: error: unknown dtype 'flaot32'; expected one of float16, bfloat16, float32, float64, int32, int64, bool; did you mean 'float32'?
model m(x: flaot32[batch, 8]) {
           ^^^^^^^^^^^^^^^^^"""),
    ('unknown_dtype_in_cast', """\
model m(x: float32[batch, 8]) {
    return cast(x, float33)
}
""",
     """\
t.model:2:20: error: undefined name 'float33'; did you mean 'float32'?
    return cast(x, float33)
                   ^^^^^^^"""),
    ('unknown_hyperparameter_type', """\
layer l(units: itn)(x) = x
""",
     """\
t.model:1:16: error: unknown hyperparameter type 'itn'; expected one of int, float, bool, str, layer; did you mean 'int'?
layer l(units: itn)(x) = x
               ^^^"""),
    ('duplicate_keyword', """\
model m(x: float32[batch, 8]) {
    y = x -> dense(4, activation=relu, activation=elu)
    return y
}
""",
     """\
t.model:2:40: error: keyword 'activation' is given twice
    y = x -> dense(4, activation=relu, activation=elu)
                                       ^^^^^^^^^^^^^^"""),
    ('unknown_keyword_did_you_mean', """\
model m(x: float32[batch, 8]) {
    y = x -> dense(4, activaton=relu)
    return y
}
""",
     """\
t.model:2:23: error: dense has no parameter 'activaton'; did you mean 'activation'?
    y = x -> dense(4, activaton=relu)
                      ^^^^^^^^^^^^^^"""),
    ('unknown_keyword_of_function_stage', """\
model m(x: float32[batch, 8]) {
    return x -> mean(axs=1)
}
""",
     """\
t.model:2:22: error: mean has no parameter 'axs'; did you mean 'axis'?
    return x -> mean(axs=1)
                     ^^^^^"""),
    ('unknown_keyword_lists_the_known_ones', """\
layer l(a: int)(x) = x
model m(x: float32[batch, 8]) {
    return x -> l(b=2)
}
""",
     """\
t.model:3:19: error: l has no parameter 'b'; it takes a, name
    return x -> l(b=2)
                  ^^^"""),
    ('undefined_size_in_param_shape', """\
layer l(x: [batch, n]) {
    param w: [n, unit] = zeros
    return x @ w
}
""",
     """\
t.model:2:18: error: undefined size 'unit' in the shape of param 'w'
    param w: [n, unit] = zeros
                 ^^^^"""),
    ('param_outside_layer', """\
model m(x: float32[batch, 8]) {
    param w: [8, 4] = zeros
    return x @ w
}
""",
     """\
t.model:2:5: error: 'param' declares a weight and belongs in a layer, not in a model
    param w: [8, 4] = zeros
    ^^^^^^^^^^^^^^^^^^^^^^^"""),
    ('param_in_metric', """\
metric me(y_true, y_pred) {
    param w: [2] = zeros
    return sum(y_true)
}
""",
     """\
t.model:2:5: error: 'param' declares a weight and belongs in a layer, not in a metric
    param w: [2] = zeros
    ^^^^^^^^^^^^^^^^^^^^
t.model:3:16: error: 'y_true' is not known after the states; a return reads states and hyperparameters
    return sum(y_true)
               ^^^^^^"""),
    ('state_outside_metric', """\
layer l(x) {
    state s = sum(x)
    return x
}
""",
     """\
t.model:2:5: error: 'state' belongs in a metric, not in a layer
    state s = sum(x)
    ^^^^^^^^^^^^^^^^"""),
    ('missing_return', """\
layer l(x) {
    y = relu(x)
}
""",
     """\
t.model:1:7: error: layer 'l' has no return statement
layer l(x) {
      ^"""),
    ('statement_after_return', """\
model m(x: float32[batch, 8]) {
    return x
    y = relu(x)
}
""",
     """\
t.model:3:5: error: statement after return is never reached
    y = relu(x)
    ^^^^^^^^^^^"""),
    ('repeat_zero', """\
model m(x: float32[batch, 8]) {
    return x -> repeat 0 dense(4)
}
""",
     """\
t.model:2:24: error: repeat count must be at least 1, got 0
    return x -> repeat 0 dense(4)
                       ^"""),
    ('repeat_count_hyperparameter_zero', """\
layer stack(n: int)(x: [batch, k]) {
    return x -> repeat n - 1 dense(4)
}
model m(x: float32[batch, 8]) {
    return x -> stack(1)
}
""",
     """\
t.model:2:24: error: repeat count must be at least 1, got 0
    return x -> repeat n - 1 dense(4)
                       ^^^^^"""),
    ('repeat_count_not_constant', """\
model m(x: float32[batch, 8]) {
    n = x
    return x -> repeat n dense(4)
}
""",
     """\
t.model:3:24: error: repeat count must be a constant integer, got tensor float32[batch, 8]
    return x -> repeat n dense(4)
                       ^"""),
    ('repeat_count_float_hyperparameter', """\
layer stack(n: float)(x: [batch, k]) {
    return x -> repeat n / 2 dense(4)
}
model m(x: float32[batch, 8]) {
    return x -> stack(3.0)
}
""",
     """\
t.model:2:24: error: repeat count must be a constant integer, got 1.5
    return x -> repeat n / 2 dense(4)
                       ^^^^^"""),
    ('repeat_count_undefined_name', """\
model m(x: float32[batch, 8]) {
    return x -> repeat n_layers dense(4)
}
""",
     """\
t.model:2:24: error: undefined name 'n_layers'
    return x -> repeat n_layers dense(4)
                       ^^^^^^^^"""),
    ('repeat_too_many', """\
model m(x: float32[batch, 8]) {
    return x -> repeat 1000 repeat 1000 relu
}
""",
     """\
t.model:2:17: error: repeat applies its stage 1000000 times, more than the limit of 100000
    return x -> repeat 1000 repeat 1000 relu
                ^^^^^^^^^^^^^^^^^^^^^^^^^^^^"""),
    ('duplicate_definition', """\
layer l(x) = x
layer l(x) = relu(x)
""",
     """\
t.model:2:7: error: 'l' is already defined at t.model:1:1
layer l(x) = relu(x)
      ^"""),
    ('metric_with_one_input', """\
metric me(y_true) {
    state s = sum(y_true)
    return s
}
""",
     """\
t.model:1:8: error: metric 'me' takes (y_true, y_pred) or (y_true, y_pred, sample_weight), got 1 input
metric me(y_true) {
       ^^"""),
    ('metric_returns_two_values', """\
metric me(y_true, y_pred) {
    return y_true, y_pred
}
""",
     """\
t.model:2:5: error: a metric returns one value
    return y_true, y_pred
    ^^^^^^^^^^^^^^^^^^^^^
t.model:2:12: error: 'y_true' is not known after the states; a return reads states and hyperparameters
    return y_true, y_pred
           ^^^^^^
t.model:2:20: error: 'y_pred' is not known after the states; a return reads states and hyperparameters
    return y_true, y_pred
                   ^^^^^^"""),
    ('tensor_hyperparameter', """\
layer l(k: [n])(x) = x
""",
     """\
t.model:1:12: error: hyperparameter 'k' cannot be a tensor; tensors go in the last group
layer l(k: [n])(x) = x
           ^^^"""),
    ('scalar_layer_input', """\
layer l(x: int) = x
""",
     """\
t.model:1:12: error: layer input 'x' needs a tensor type such as [batch, n], not 'int'
layer l(x: int) = x
           ^^^"""),
    ('ellipsis_not_first', """\
layer l(x: [n, ..., k]) = x
""",
     """\
t.model:1:16: error: '...' may only stand first, for any number of leading dims
layer l(x: [n, ..., k]) = x
               ^^^"""),
    ('input_with_default', """\
layer l(x = 3) = x
""",
     """\
t.model:1:13: error: input 'x' cannot have a default value
layer l(x = 3) = x
            ^"""),
    ('model_input_without_dtype', """\
model m(x: [batch, 8]) {
    return x
}
""",
     """\
t.model:1:9: error: model input 'x' needs a dtype and shape, such as float32[batch, 8]
model m(x: [batch, 8]) {
        ^^^^^^^^^^^^^"""),
    ('model_input_without_type', """\
model m(x) {
    return x
}
""",
     """\
t.model:1:9: error: model input 'x' needs a dtype and shape, such as float32[batch, 8]
model m(x) {
        ^"""),
    ('several_name_errors', """\
model m(x: float32[batch, 8]) {
    a = relu(q)
    b = x -> dens(4)
    return c
}
""",
     """\
t.model:2:14: error: undefined name 'q'
    a = relu(q)
             ^
t.model:3:14: error: undefined name 'dens'; did you mean 'dense'?
    b = x -> dens(4)
             ^^^^
t.model:4:12: error: undefined name 'c'
    return c
           ^"""),
    # --- hyperparameter values, dtypes and shapes: found while each model is lowered
    ('too_many_positional_hyperparameters', """\
model m(x: float32[batch, 8]) {
    y = x -> dense(4, relu, true, zeros, zeros, 7)
    return y
}
""",
     """\
t.model:2:14: error: dense takes 5 hyperparameters (units, activation, use_bias, kernel_initializer, bias_initializer), got 6
    y = x -> dense(4, relu, true, zeros, zeros, 7)
             ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^"""),
    ('missing_required_hyperparameter', """\
model m(x: float32[batch, 8]) {
    y = x -> dense
    return y
}
""",
     """\
t.model:2:14: error: dense needs its hyperparameter 'units'
    y = x -> dense
             ^^^^^"""),
    ('wrong_hyperparameter_type', """\
model m(x: float32[batch, 8]) {
    y = x -> dense("a")
    return y
}
""",
     """\
t.model:2:14: error: dense hyperparameter 'units' expects an int, got str
    y = x -> dense("a")
             ^^^^^^^^^^"""),
    ('hyperparameter_given_twice', """\
model m(x: float32[batch, 8]) {
    return x -> dense(4, units=4)
}
""",
     """\
t.model:2:17: error: dense got 'units' twice
    return x -> dense(4, units=4)
                ^^^^^^^^^^^^^^^^^"""),
    ('shape_mismatch_into_layer', """\
layer residual(units: int)(x: [batch, units]) {
    h = x -> dense(units, activation=elu) -> dense(units, activation=elu)
    return x + h
}

model housing(x: float32[batch, 8]) {
    h = x -> dense(40) -> repeat 3 residual(30)
    return h
}
""",
     """\
t.model:7:36: error: residual expects input [batch, 30], got [batch, 40]
    h = x -> dense(40) -> repeat 3 residual(30)
                                   ^^^^^^^^^^^^"""),
    ('repeated_symbol_mismatch', """\
layer l(x: [n, n]) = x
model m(x: float32[batch, 8]) {
    return x -> l
}
""",
     """\
t.model:3:17: error: l expects input [n, n], got [batch, 8]
    return x -> l
                ^"""),
    ('matmul_inner_dims', """\
model m(a: float32[batch, 8], b: float32[4, 3]) {
    return a @ b
}
""",
     """\
t.model:2:12: error: matmul inner dimensions differ: [batch, 8] @ [4, 3]
    return a @ b
           ^^^^^"""),
    ('broadcast_mismatch', """\
model m(a: float32[batch, 8], b: float32[batch, 3]) {
    return a + b
}
""",
     """\
t.model:2:12: error: cannot broadcast [batch, 8] and [batch, 3]
    return a + b
           ^^^^^"""),
    ('dtype_mismatch', """\
model m(a: float16[batch, 8], b: float32[batch, 8]) {
    y = a + b
    return y
}
""",
     """\
t.model:2:9: error: '+' of float16[batch, 8] and float32[batch, 8]: dtypes differ; use cast(x, float16)
    y = a + b
        ^^^^^"""),
    ('index_out_of_range', """\
model m(x: float32[batch, 8]) {
    return x[:, 9]
}
""",
     """\
t.model:2:17: error: index 9 is out of range for axis 1 of size 8
    return x[:, 9]
                ^"""),
    ('axis_out_of_range', """\
model m(x: float32[batch, 8]) {
    return sum(x, axis=5)
}
""",
     """\
t.model:2:12: error: sum(): axis 5 is out of range for rank 2
    return sum(x, axis=5)
           ^^^^^^^^^^^^^^"""),
    ('impossible_reshape', """\
model m(x: float32[batch, 8]) {
    return x -> reshape([3, -1])
}
""",
     """\
t.model:2:17: error: cannot reshape [8] into [3, -1]
    return x -> reshape([3, -1])
                ^^^^^^^^^^^^^^^^"""),
    ('layer_uses_itself', """\
layer a(x) = b(x)
layer b(x) = a(x)
model m(x: float32[batch, 8]) {
    return x -> a
}
""",
     """\
t.model:2:14: error: layer 'a' uses itself: a -> b -> a
layer b(x) = a(x)
             ^^^^"""),
    ('model_applied_as_layer', """\
model m(x: float32[batch, 8]) {
    return x -> m
}
""",
     """\
t.model:2:17: error: 'm' is a model, not a layer
    return x -> m
                ^"""),
    ('tensor_as_stage', """\
model m(x: float32[batch, 8]) {
    return x -> x
}
""",
     """\
t.model:2:17: error: 'x' is a tensor float32[batch, 8]; a stage must be a layer or a function
    return x -> x
                ^"""),
    ('output_returned_twice', """\
model m(x: float32[batch, 8]) {
    return x, x
}
""",
     """\
t.model:2:15: error: output name 'x' is returned twice
    return x, x
              ^"""),
    ('several_shape_errors', """\
model m(a: float32[batch, 8], b: float32[batch, 3], c: float16[batch, 8]) {
    p = a + b
    q = a @ b
    r = a * c
    s = p -> dense(2)
    return s, q, r
}
""",
     """\
t.model:2:9: error: cannot broadcast [batch, 8] and [batch, 3]
    p = a + b
        ^^^^^
t.model:3:9: error: matmul inner dimensions differ: [batch, 8] @ [batch, 3]
    q = a @ b
        ^^^^^
t.model:4:9: error: '*' of float32[batch, 8] and float16[batch, 8]: dtypes differ; use cast(x, float32)
    r = a * c
        ^^^^^"""),
]


@pytest.mark.parametrize("source, expected", [pytest.param(s, e, id=name) for name, s, e in CASES])
def test_golden_diagnostic(source: str, expected: str) -> None:
    assert rendered(source) == expected


def test_golden_ids_are_distinct() -> None:
    assert len({name for name, _, _ in CASES}) == len(CASES) >= 35


# --- several errors in one file ---------------------------------------------------------------
@pytest.mark.parametrize("name, count", [("several_name_errors", 3), ("several_shape_errors", 3)])
def test_every_independent_error_is_reported(name: str, count: int) -> None:
    source = next(s for n, s, _ in CASES if n == name)
    assert len(modelc.check_source(source, file="t.model")) == count


def test_independent_errors_stop_at_twenty() -> None:
    body = "".join(f"    y{i} = relu(z{i})\n" for i in range(30))
    source = f"model m(x: float32[batch, 8]) {{\n{body}    return x\n}}\n"
    diagnostics = modelc.check_source(source, file="t.model")
    assert [d.message for d in diagnostics] == [f"undefined name 'z{i}'" for i in range(20)]
    assert [d.span.line for d in diagnostics] == list(range(2, 22))


# --- empty files are fine -----------------------------------------------------------------------
@pytest.mark.parametrize("source", ["", "\n\n   \n", "# only a comment\n", "# no newline at the end"])
def test_a_file_without_definitions_is_no_error(source: str) -> None:
    assert modelc.check_source(source, file="t.model") == []


# --- nesting: a diagnostic, never a RecursionError ----------------------------------------------
MODEL = "model m(x: float32[batch, 8]) {\n"


def test_5000_parentheses_deep_is_fine() -> None:
    # parentheses make no tree level: 5,000 of them around a name are just the name
    source = MODEL + "    return " + "(" * 5000 + "x" + ")" * 5000 + "\n}\n"
    assert modelc.check_source(source, file="t.model") == []


def test_5000_parentheses_deep_around_an_undefined_name() -> None:
    line = "    return " + "(" * 5000 + "z" + ")" * 5000
    # a long line is quoted 200 characters wide, the caret a quarter of the way in (issue 13: bounded output)
    assert rendered(MODEL + line + "\n}\n") == (
        f"t.model:2:5012: error: undefined name 'z'\n…{line[4961:5161]}…\n{' ' * 51}^")


@pytest.mark.parametrize("expression", [
    pytest.param("-" * 5000 + "x", id="5000_unary_minus"),
    pytest.param("not " * 5000 + "x", id="5000_not"),
    pytest.param("exp(" * 5000 + "x" + ")" * 5000, id="5000_nested_calls"),
    pytest.param("[" * 5000 + "x" + "]" * 5000, id="5000_nested_lists"),
    pytest.param("[" * 300 + "x" + "]" * 300, id="300_nested_lists"),
    pytest.param("x" + " ** x" * 5000, id="5000_powers"),
    pytest.param("x" + " + x" * 5000, id="5000_term_sum"),
    pytest.param("x" + " -> relu" * 5000, id="5000_stage_pipeline"),
    pytest.param("x" + "[0]" * 5000, id="5000_indexes"),
])
def test_deep_nesting_is_a_diagnostic(expression: str) -> None:
    line = "    return " + expression
    (d,) = modelc.check_source(MODEL + line + "\n}\n", file="t.model")
    assert d.message == "expression nested too deeply (more than 200 levels)"
    assert d.span.line == 2 and d.source_line == line
    head, shown, carets = d.render().split("\n")
    assert head == f"t.model:2:{d.span.col}: error: expression nested too deeply (more than 200 levels)"
    # the line is quoted at most 200 characters wide around the caret, "…" marking what is left out
    assert len(shown.strip("…")) <= 200 and shown.strip("…") in line
    indent, span = carets[:len(carets) - len(carets.lstrip(" "))], carets.lstrip(" ")
    assert span and set(span) == {"^"} and len(carets) <= len(shown)
    assert shown[len(indent)] == line[d.span.col - 1]   # the caret under the span's first character


def test_deep_nesting_exactly() -> None:
    line = "    return " + "-" * 5000 + "x"
    # the 201st level down is the 197th minus sign: the caret runs from it to the end of the quoted window,
    # 200 characters of the line from 50 before it
    assert rendered(MODEL + line + "\n}\n") == (
        "t.model:2:208: error: expression nested too deeply (more than 200 levels)\n"
        f"…{line[157:357]}…\n{' ' * 51}{'^' * 150}")


# --- imports (files in tmp_path) ----------------------------------------------------------------
def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def rendered_file(path: Path) -> str:
    return "\n".join(d.render() for d in modelc.check_file(path))


def test_import_of_a_missing_file(tmp_path: Path) -> None:
    main = write(tmp_path / "main.model", 'import "nope.model"\nmodel m(x: float32[batch, 8]) {\n    return x\n}\n')
    assert rendered_file(main) == (
        f"{main}:1:1: error: cannot import 'nope.model': no such file {tmp_path / 'nope.model'}\n"
        'import "nope.model"\n'
        "^^^^^^^^^^^^^^^^^^^")


def test_import_cycle(tmp_path: Path) -> None:
    a = write(tmp_path / "a.model", 'import "b.model"\nmodel m(x: float32[batch, 8]) {\n    return x -> lb\n}\n')
    b = write(tmp_path / "b.model", 'import "a.model"\nlayer lb(x) = relu(x)\n')
    assert rendered_file(a) == (
        f"{b}:1:1: error: import cycle: {a} -> {b} -> {a}\n"
        'import "a.model"\n'
        "^^^^^^^^^^^^^^^^")


def test_a_file_importing_itself(tmp_path: Path) -> None:
    a = write(tmp_path / "a.model", 'import "a.model"\nlayer l(x) = x\n')
    assert rendered_file(a) == f'{a}:1:1: error: import cycle: {a} -> {a}\nimport "a.model"\n^^^^^^^^^^^^^^^^'


def test_definition_clashing_with_an_imported_one(tmp_path: Path) -> None:
    lib = write(tmp_path / "lib.model", "layer l(x) = relu(x)\n")
    main = write(tmp_path / "main.model", 'import "lib.model"\nlayer l(x) = x\n')
    assert rendered_file(main) == f"{main}:2:7: error: 'l' is already defined at {lib}:1:1\nlayer l(x) = x\n      ^"


def test_syntax_error_in_an_imported_file_points_into_it(tmp_path: Path) -> None:
    lib = write(tmp_path / "lib.model", "layer g(x) = relu(x)\nlayer h(x =\n")
    main = write(tmp_path / "main.model", 'import "lib.model"\nmodel m(x: float32[batch, 8]) {\n    return x -> g\n}\n')
    assert rendered_file(main) == (
        f"{lib}:2:12: error: unexpected end of file; expected an expression\nlayer h(x =\n           ^")


def test_name_error_in_an_imported_file_points_into_it(tmp_path: Path) -> None:
    lib = write(tmp_path / "lib.model", "layer g(x) = rellu(x)\n")
    main = write(tmp_path / "main.model", 'import "lib.model"\nmodel m(x: float32[batch, 8]) {\n    return x -> g\n}\n')
    assert rendered_file(main) == (
        f"{lib}:1:14: error: undefined name 'rellu'; did you mean 'relu'?\nlayer g(x) = rellu(x)\n             ^^^^^")


def test_import_of_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "bin.model").write_bytes(b"\xff\xfe\x00layer")
    main = write(tmp_path / "main.model", 'import "bin.model"\n')
    assert rendered_file(main) == (
        f"{main}:1:1: error: cannot import 'bin.model': {tmp_path / 'bin.model'} is not UTF-8 text\n"
        'import "bin.model"\n'
        "^^^^^^^^^^^^^^^^^^")


def test_import_of_a_folder(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    main = write(tmp_path / "main.model", 'import "sub"\n')
    assert rendered_file(main) == (
        f"{main}:1:1: error: cannot import 'sub': {tmp_path / 'sub'} is a folder, not a .model file\n"
        'import "sub"\n'
        "^^^^^^^^^^^^")


# --- the command line ---------------------------------------------------------------------------
def cli_check(name: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess, str]:
    source, expected = next((s, e) for n, s, e in CASES if n == name)
    write(tmp_path / "t.model", source)
    result = run_modelc("check", "t.model", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    return result, expected


@pytest.mark.parametrize("name", ["unknown_layer", "shape_mismatch_into_layer", "several_name_errors",
                                  "several_shape_errors", "tab_indented_line"])
def test_cli_check_prints_the_golden_and_the_count(name: str, tmp_path: Path) -> None:
    result, expected = cli_check(name, tmp_path)
    count = expected.count("\nt.model:") + 1
    assert result.stderr == f"{expected}\n{count} error{'s' * (count != 1)}\n"


@pytest.mark.parametrize("name", ["missing_close_paren", "unterminated_string", "duplicate_definition"])
def test_cli_check_prints_the_golden_for_a_file_that_does_not_load(name: str, tmp_path: Path) -> None:
    result, expected = cli_check(name, tmp_path)
    assert result.stderr.startswith(f"{expected}\n")


@pytest.mark.parametrize("name", ["missing_close_paren", "duplicate_definition"])
def test_cli_check_counts_errors_of_a_file_that_does_not_load(name: str, tmp_path: Path) -> None:
    result, expected = cli_check(name, tmp_path)
    assert result.stderr == f"{expected}\n1 error\n"


def test_cli_check_deep_nesting(tmp_path: Path) -> None:
    write(tmp_path / "t.model", MODEL + "    return " + "exp(" * 5000 + "x" + ")" * 5000 + "\n}\n")
    result = run_modelc("check", "t.model", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("t.model:2:")
    assert "nested too deeply" in result.stderr and "Traceback" not in result.stderr


def test_cli_check_import_cycle(tmp_path: Path) -> None:
    write(tmp_path / "a.model", 'import "b.model"\nlayer la(x) = x\n')
    write(tmp_path / "b.model", 'import "a.model"\nlayer lb(x) = x\n')
    result = run_modelc("check", "a.model", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == 'b.model:1:1: error: import cycle: a.model -> b.model -> a.model\nimport "a.model"\n' \
                            "^^^^^^^^^^^^^^^^\n1 error\n"


def test_cli_check_missing_file(tmp_path: Path) -> None:
    result = run_modelc("check", "nope.model", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == "error: cannot read nope.model: No such file or directory\n"


def test_cli_check_ok(tmp_path: Path) -> None:
    write(tmp_path / "t.model", MODEL + "    return x -> dense(4)\n}\n")
    result = run_modelc("check", "t.model", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "t.model: ok (1 models, 0 layers, 0 metrics)\n"


@pytest.mark.parametrize("args", [["compile"], ["check"], [], ["check", "--no-such-flag", "t.model"],
                                  ["no-such-command"]])
def test_cli_usage_error_exits_2(args: list[str], tmp_path: Path) -> None:
    result = run_modelc(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert "usage: modelc" in result.stderr and "Traceback" not in result.stderr


# --- wrong today: what the message should say (compiler/lower.py, compiler/functions.py) --------------
def only(source: str) -> modelc.Diagnostic:
    (d,) = modelc.check_source(source, file="t.model")
    return d


def test_function_with_too_many_arguments() -> None:
    assert rendered(MODEL + "    return exp(x, x)\n}\n") == """\
t.model:2:12: error: exp() takes at most 1 argument, got 2
    return exp(x, x)
           ^^^^^^^^^"""


def test_float_literal_meets_int_tensor() -> None:
    assert rendered("model m(x: int32[batch, 8]) {\n    return x * 0.5\n}\n") == """\
t.model:2:12: error: the float 0.5 cannot meet an int32 tensor; use cast()
    return x * 0.5
           ^^^^^^^"""


def test_tensor_used_as_a_stage() -> None:
    assert rendered(MODEL + "    return x -> x\n}\n") == """\
t.model:2:17: error: 'x' is a tensor float32[batch, 8]; a stage must be a layer or a function
    return x -> x
                ^"""


def test_layer_given_as_initializer() -> None:
    assert rendered(MODEL + "    return x -> dense(4, kernel_initializer=relu)\n}\n") == """\
t.model:2:17: error: dense hyperparameter 'kernel_initializer' expects an initializer, got the layer relu
    return x -> dense(4, kernel_initializer=relu)
                ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^"""


def test_dtype_name_in_arithmetic() -> None:
    assert rendered(MODEL + "    return x + float32\n}\n") == """\
t.model:2:12: error: '+' cannot combine tensor float32[batch, 8] and the dtype float32
    return x + float32
           ^^^^^^^^^^^"""


def test_power_without_a_real_value() -> None:
    d = only(MODEL + "    return x + (-8) ** 0.5\n}\n")
    assert d.message == "'**' of -8 and 0.5 has no real value"


def test_a_long_chain_of_layers_is_fine() -> None:
    layers = "layer l0(x) = relu(x)\n" + "".join(f"layer l{i}(x) = l{i - 1}(x)\n" for i in range(1, 150))
    assert modelc.check_source(layers + MODEL + "    return x -> l149\n}\n", file="t.model") == []


def test_compile_index_at_int64_max() -> None:
    source = MODEL + "    return x[9223372036854775807]\n}\n"
    try:
        modelc.compile_source(source, file="t.model")
    except modelc.ModelcError as e:
        assert all(d.span is not None for d in e.diagnostics)
