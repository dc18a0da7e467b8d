"""The offline compression toolkit: BERT-family text classifiers made smaller and faster
(fine-tune, distil, prune, quantize, export to ONNX, evaluate, register).

Layout, lower layers first; a module imports only from its own layer or the ones above it
in this list, at the top of the file (function-level imports only defer heavy libraries):

    core/          errors, the file layout of a step folder, reuse keys (digest.py), the
                   cached step (steps.run_step), labelled data loading
    config/        frozen step configs with their presets (steps.py); the pipeline file
                   (pipeline_file.py, sections.py)
    tasks/         the task seam: head, batch encoding, answers, metrics (classification.py)
    models/        loading; the architecture seam (architectures.py, with one adapter per
                   model_type in adapters/); the pruned-shape format; students; low-rank
                   embeddings
    pruning/       structured (heads, FFN), vocabulary, magnitude (unstructured)
    quantization/  post-training (onnxruntime), QAT, QDQ graph rewrites
    training/      fine-tuning, distillation (trainer, teachers, losses), augmentation
    evaluation/    variants and runners, timing, peak memory, report and chart
    exporting/     PyTorch -> ONNX and the steps on ONNX folders (export, quantize,
                   float-outputs)
    pipeline.py    the whole chain from a config file;  register.py  publishing;
    bench.py       the benchmark report
    cli/           `python -m compression`: one module per command group

To add a step: a function that builds its key and calls `core.steps.run_step`. A task: a
class like `tasks.classification.SequenceClassification` in `tasks.registry.TASKS`. An
architecture: an adapter in `models/adapters/` (an `EncoderAdapter` subclass, mostly
tables) listed in `models.architectures.ADAPTERS` (docs/capabilities.md says what each is
tested for). A command: `add_parsers` and a `run_*` function in a `cli/` module listed in
`cli.main.COMMAND_GROUPS`.
"""
