"""One architecture adapter per `config.model_type` (`models.architectures` collects them):
the tables and the few methods that say where a model keeps its layers, heads, FFN and
embeddings. `base.EncoderAdapter` does the work; each module here describes a family."""
