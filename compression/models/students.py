"""Distillation students built from a teacher: DistilBERT-style copies of some of its
layers, or a narrower model with random weights."""

from __future__ import annotations

from torch import nn

from compression.core.errors import ConfigError
from compression.models.architectures import adapter_for
from compression.models.shapes import SHAPES_KEY, apply_layer_shapes, layer_shapes


def evenly_spaced_layers(teacher_layers: int, student_layers: int) -> list[int]:
    """Teacher layers to copy: spread over the depth, always including the first.

    6 -> 3 gives [0, 2, 4], the DistilBERT choice of every other layer.
    """
    if not 1 <= student_layers <= teacher_layers:
        raise ConfigError(
            f"a student needs 1..{teacher_layers} layers (the teacher's count), "
            f"got {student_layers}"
        )
    step = teacher_layers / student_layers
    return [int(i * step) for i in range(student_layers)]


def _student_layers(n_teacher: int, layers: list[int] | None,
                    num_layers: int | None) -> list[int]:
    if layers is None:
        layers = evenly_spaced_layers(n_teacher, num_layers or max(1, n_teacher // 2))
    if num_layers is not None and num_layers != len(layers):
        raise ConfigError(f"num_layers={num_layers} but {len(layers)} layers were listed")
    if len(layers) > n_teacher:
        raise ConfigError(f"the student has {len(layers)} layers, the teacher only {n_teacher}")
    if any(not 0 <= i < n_teacher for i in layers):
        raise ConfigError(f"teacher layer indices must be in 0..{n_teacher - 1}, got {layers}")
    return layers


def make_student(
    teacher: nn.Module,
    layers: list[int] | None = None,
    num_layers: int | None = None,
    hidden_size: int | None = None,
    num_heads: int | None = None,
    intermediate_size: int | None = None,
) -> nn.Module:
    """A smaller student for `teacher`.

    Same width: DistilBERT-style, the embeddings, the chosen teacher layers, pooler and
    classifier are copied; a structurally pruned teacher's layers keep their pruned
    shapes (so this also removes whole layers from a pruned model). Narrower
    (`hidden_size` below the teacher's): a fresh model with random weights and the
    teacher's vocabulary, to be trained by distillation.
    """
    adapter = adapter_for(teacher)
    shape = adapter.shape(teacher.config)
    layers = _student_layers(shape.num_layers, layers, num_layers)
    if hidden_size is not None and hidden_size != shape.hidden_size:
        heads = num_heads or max(1, hidden_size // 64)
        if hidden_size % heads:
            raise ConfigError(f"hidden_size {hidden_size} is not divisible by {heads} heads")
        config = adapter.student_config(teacher.config, len(layers), hidden_size, heads,
                                        intermediate_size or 4 * hidden_size)
        return type(teacher)(config)
    # The teacher's own class: a sequence or a token classifier (`adapter.classifier_class`
    # is the sequence classifier).
    config = adapter.student_config(teacher.config, len(layers))
    pruned = getattr(config, SHAPES_KEY, None) is not None
    if pruned:
        shapes = [layer_shapes(teacher)[i] for i in layers]
        setattr(config, SHAPES_KEY, shapes)
    student = type(teacher)(config)
    if pruned:  # sized like the kept layers before their weights are copied
        apply_layer_shapes(student, shapes)
    adapter.copy_layers(teacher, student, layers)
    return student


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
