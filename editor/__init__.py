"""Working in .model files: the formatter, highlighting, the language server and pictures of a model."""
