"""Errors the command line turns into one clear line and a non-zero exit."""


class CompressionError(Exception):
    """Any failure the user can fix: bad data, a bad model folder, a bad config."""


class DataError(CompressionError):
    """A dataset file is missing, empty or malformed."""


class ModelError(CompressionError):
    """A model folder is missing or is not a BERT-family sequence classifier."""


class ConfigError(CompressionError):
    """A step's parameters are impossible (e.g. more student layers than the teacher)."""


class ParityError(CompressionError):
    """An exported model's outputs do not match the PyTorch model's."""


class BudgetMissed(CompressionError):
    """No variant (or a listed, unforced one) is within the accuracy budget."""


class TrainingStopped(CompressionError):
    """Training was ended early by its caller's stop check (a deadline); its checkpoints
    are kept, so the same step run again resumes from the last one."""

    def __init__(self, message: str, epoch: float = 0.0, epochs: float = 0.0) -> None:
        super().__init__(message)
        self.epoch, self.epochs = epoch, epochs
