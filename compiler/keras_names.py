"""Keras' words and modelc's: the one table of Keras layer classes, metric names and keywords with their
modelc names. `did_you_mean` consults it first, docs/language.md §11.5 lists it (tests/test_keras_names.py
checks both), and weight binding reads Keras' default layer names from it."""
from __future__ import annotations

import re
from typing import Any, Callable

_DIMS = ("1D", "2D", "3D")

# Keras layer class -> modelc built-in layer (Keras' aliases too: MaxPool2D is MaxPooling2D)
KERAS_LAYERS: dict[str, str] = {
    "Dense": "dense", "Dropout": "dropout", "Flatten": "flatten", "Reshape": "reshape",
    "Concatenate": "concat", "Embedding": "embedding", "Permute": "permute", "RepeatVector": "repeat_vector",
    "Rescaling": "rescaling", "BatchNormalization": "batch_norm", "LayerNormalization": "layer_norm",
    "GroupNormalization": "group_norm", "RMSNormalization": "rms_norm", "UnitNormalization": "unit_norm",
    "Normalization": "normalization", "MultiHeadAttention": "multi_head_attention", "LSTM": "lstm",
    "GRU": "gru", "SimpleRNN": "simple_rnn", "Bidirectional": "bidirectional", "ReLU": "relu",
    "LeakyReLU": "leaky_relu", "ELU": "elu", "Softmax": "softmax",
    **{f"Conv{d}": f"conv{d.lower()}" for d in _DIMS},
    **{f"Conv{d}Transpose": f"conv{d.lower()}_transpose" for d in _DIMS},
    **{f"DepthwiseConv{d}": f"depthwise_conv{d.lower()}" for d in _DIMS[:2]},
    **{f"SeparableConv{d}": f"separable_conv{d.lower()}" for d in _DIMS[:2]},
    **{f"{pool}{d}": f"max_pool{d.lower()}" for pool in ("MaxPooling", "MaxPool") for d in _DIMS},
    **{f"{pool}{d}": f"avg_pool{d.lower()}" for pool in ("AveragePooling", "AvgPool") for d in _DIMS},
    **{f"{pool}{d}": f"global_avg_pool{d.lower()}" for pool in ("GlobalAveragePooling", "GlobalAvgPool")
       for d in _DIMS},
    **{f"{pool}{d}": f"global_max_pool{d.lower()}" for pool in ("GlobalMaxPooling", "GlobalMaxPool")
       for d in _DIMS},
    **{f"ZeroPadding{d}": f"zero_padding{d.lower()}" for d in _DIMS[:2]},
    **{f"Cropping{d}": f"cropping{d.lower()}" for d in _DIMS[:2]},
    **{f"UpSampling{d}": f"upsampling{d.lower()}" for d in _DIMS[:2]},
}

# Keras activation (as a layer config names it) -> modelc activation layer (`modelc import` reads these)
KERAS_ACTIVATIONS: dict[str, str] = {
    **{name: name for name in ("linear", "relu", "elu", "selu", "sigmoid", "tanh", "softmax", "softplus", "softsign",
                               "gelu", "silu", "exponential", "leaky_relu")},
    "swish": "silu",
}

# Keras metric or loss (function name, class name, string alias) -> modelc built-in metric
KERAS_METRICS: dict[str, str] = {
    "Mean": "mean",
    "mean_squared_error": "mse", "MeanSquaredError": "mse", "MSE": "mse",
    "root_mean_squared_error": "rmse", "RootMeanSquaredError": "rmse",
    "mean_absolute_error": "mae", "MeanAbsoluteError": "mae", "MAE": "mae",
    "Huber": "huber", "huber_loss": "huber",
    "logcosh": "log_cosh", "LogCosh": "log_cosh", "LogCoshError": "log_cosh",
    "R2Score": "r2", "R2": "r2", "r2_score": "r2",
    "mean_absolute_percentage_error": "mape", "MeanAbsolutePercentageError": "mape", "MAPE": "mape",
    "mean_squared_logarithmic_error": "msle", "MeanSquaredLogarithmicError": "msle", "MSLE": "msle",
    "BinaryAccuracy": "binary_accuracy",
    # class indices as labels (Keras' sparse_*), and one-hot labels (Keras' categorical_*)
    "Accuracy": "accuracy", "sparse_categorical_accuracy": "accuracy", "SparseCategoricalAccuracy": "accuracy",
    "sparse_top_k_categorical_accuracy": "top_k_accuracy", "SparseTopKCategoricalAccuracy": "top_k_accuracy",
    "CategoricalAccuracy": "categorical_accuracy", "categorical_accuracy": "categorical_accuracy",
    "TopKCategoricalAccuracy": "top_k_categorical_accuracy", "CategoricalCrossentropy": "categorical_crossentropy",
    "Precision": "precision", "Recall": "recall", "F1Score": "f1", "FBetaScore": "fbeta",
    "TruePositives": "true_positives", "FalsePositives": "false_positives", "TrueNegatives": "true_negatives",
    "FalseNegatives": "false_negatives",
    "AUC": "auc", "BinaryCrossentropy": "binary_crossentropy",
    "SparseCategoricalCrossentropy": "sparse_categorical_crossentropy",
}

# A Keras class's defaults where they differ from the modelc metric it names: AUC() has 200 thresholds (199 bins);
# Precision() and the counts threshold at 0.5, where modelc's default is each row's argmax; F1Score() and
# FBetaScore() give one value per class
KERAS_DEFAULTS: dict[str, dict[str, Any]] = {
    "AUC": {"bins": 199}, "Precision": {"threshold": 0.5}, "Recall": {"threshold": 0.5},
    **{k: {"threshold": 0.5} for k in ("TruePositives", "FalsePositives", "TrueNegatives", "FalseNegatives")},
    "F1Score": {"average": "none"}, "FBetaScore": {"average": "none"},
}

# Keras keyword -> modelc keyword, with the modelc callees that take it under the new name
KERAS_KEYWORDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "delta": ("threshold", ("huber",)),
    "thresholds": ("threshold", ("binary_accuracy", "precision", "recall", "f1")),
    "num_thresholds": ("bins", ("auc", "pr_auc")),
    "class_aggregation": ("multioutput", ("r2",)),
    "negative_slope": ("alpha", ("leaky_relu",)),
    "target_shape": ("shape", ("reshape",)),
}

# A Keras keyword's value as modelc's keyword takes it, where they differ: Keras' n thresholds (0 and 1
# included) cut [0, 1] into n - 1 bins; R2Score names its weighted average "variance_weighted_average".
KERAS_VALUES: dict[str, Callable[[Any], Any]] = {
    "num_thresholds": lambda n: n - 1 if isinstance(n, int) and not isinstance(n, bool) else n,
    "class_aggregation": lambda v: {"variance_weighted_average": "variance_weighted"}.get(v, v),
}

KERAS_NAMES: dict[str, str] = {**KERAS_LAYERS, **KERAS_METRICS,
                               **{k: new for k, (new, _) in KERAS_KEYWORDS.items()}}


def keras_metric_call(name: str, kwargs: dict[str, Any], known: set[str],
                      params_of: Callable[[str], list[str]]) -> tuple[str, dict[str, Any]]:
    """A metric spec as Keras writes it, in modelc's words: `MeanSquaredError` -> `mse`, `huber(delta=2)` ->
    `huber(threshold=2)`, `AUC(num_thresholds=201)` -> `auc(bins=200)`. A name in `known` (a built-in or
    the user's own metric) is taken as it is; so is a keyword the metric has."""
    keras_class = name if name not in known else None
    name = name if name in known else KERAS_METRICS.get(name, name)
    if name not in known:
        return name, kwargs
    params, out = params_of(name), {}
    for key, value in kwargs.items():
        new, callees = KERAS_KEYWORDS.get(key, (key, ()))
        if key not in params and name in callees and new in params and new not in kwargs:
            key, value = new, KERAS_VALUES.get(key, lambda v: v)(value)
        if keras_class and value is None and key in ("average", "multioutput"):
            value = "none"  # Keras' average=None: one value per class
        out[key] = value
    defaults = KERAS_DEFAULTS.get(keras_class or "", {})
    return name, {**{k: v for k, v in defaults.items() if k in params}, **out}


def snake_case(class_name: str) -> str:
    """Keras' default layer name for a class (keras.src.utils.naming.to_snake_case): Conv2D -> conv2d,
    BatchNormalization -> batch_normalization."""
    name = re.sub(r"\W+", "", class_name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


# Keras' default layer name -> modelc's default instance name, where they differ (`batch_normalization`)
KERAS_DEFAULT_NAMES: dict[str, str] = {snake_case(k): v for k, v in KERAS_LAYERS.items() if snake_case(k) != v}


def keras_suggestion(name: str, candidates: set[str]) -> str | None:
    """The modelc word for a Keras word, if it is among the candidates: `BatchNormalization` -> `batch_norm`."""
    word = KERAS_NAMES.get(name)
    return word if word in candidates else None


def modelc_weight_name(name: str) -> str:
    """A Keras variable path as modelc names the weight: `batch_normalization_1/gamma` ->
    `batch_norm_1.gamma` (`/` becomes `.`, Keras' default layer names become modelc's)."""
    parts = []
    for part in re.split(r"[/.]", name):
        match = re.fullmatch(r"(.*?)(_\d+)?", part)
        base, counter = match.group(1), match.group(2) or ""  # type: ignore[union-attr]
        parts.append(KERAS_DEFAULT_NAMES.get(base, base) + counter)
    return ".".join(parts)


def looks_like_keras(name: str) -> bool:
    """A weight name written as Keras writes it: `/` separators or a Keras default layer name."""
    return "/" in name or modelc_weight_name(name) != name
