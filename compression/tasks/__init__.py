"""Tasks: what a model's head is, how a batch is encoded, how outputs become answers and
which metrics score them. The steps ask the task, never a head class by name.

Sequence classification exists in two label setups: single-label
(`classification.SequenceClassification`: softmax, argmax) and multi-label
(`multi_label.MultiLabelClassification`: a sigmoid per label, thresholds fitted on dev).
`registry.task_for_data` picks one for a data config, `registry.task_of` for a trained
classifier. A new task is a class with the methods of `SequenceClassification` and an
entry in `TASKS`.
"""
