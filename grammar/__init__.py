"""Package data: model.lark, the grammar of the .model language."""
