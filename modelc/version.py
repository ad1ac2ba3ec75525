"""The version, in one place: `modelc --version`, `modelc.__version__`, the ONNX producer_version and the
`modelc.version` metadata of every compiled model read it, and pyproject.toml takes the package's from it."""

__version__ = "0.2.0"
DISTRIBUTION = "modelc-onnx"   # the name on the package index ("modelc" there is another project)
