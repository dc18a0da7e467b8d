"""Tasks: what a model's head is, how a batch is encoded, how outputs become answers and
which metrics score them. The steps ask the task, never a head class by name.

Only sequence classification exists today; a new task is a class with the methods of
`SequenceClassification` and an entry in `TASKS`.
"""
