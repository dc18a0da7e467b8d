"""What `GET /models` says of a version from its manifest (`ModelManager.describe`)."""

from __future__ import annotations

from typing import Any

from registry import QA_TASK, Manifest, QaSettings

__all__ = ["manifest_fields"]


def manifest_fields(manifest: Manifest) -> dict[str, Any]:
    """A version's task and how it reads its input: the label setup (and thresholds) of
    a classifier, the windows and answer search of a question answerer (`qa`)."""
    fields: dict[str, Any] = {"task": manifest.task, "label_setup": manifest.label_setup}
    if manifest.thresholds is not None:
        fields["thresholds"] = manifest.label_thresholds
    fields["labels"] = manifest.labels
    fields["metrics"] = manifest.metrics
    fields["max_length"] = manifest.max_length
    if manifest.task == QA_TASK:
        # The settings it serves with (app.question_answerer.window_settings), window
        # size included, in the manifest's own names.
        qa = manifest.qa or QaSettings()
        fields["qa"] = {"max_length": manifest.max_length, **qa.model_dump()}
    fields["lineage"] = {
        "method": manifest.lineage.method,
        "parent": manifest.lineage.parent,
        "created_at": manifest.lineage.created_at.isoformat(),
    }
    return fields
