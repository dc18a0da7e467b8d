"""Models: loading, architecture adapters (where layers, heads, FFN and embeddings live),
the pruned-shape format, distillation students and low-rank embeddings."""
