"""The runtime: sessions on onnxruntime / the reference evaluator, data readers, metrics."""
