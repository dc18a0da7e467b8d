"""Where the shipped registry versions are, for the tests that check them."""

from __future__ import annotations

from pathlib import Path

from app.classifier import OnnxClassifier
from registry import RoutingTable

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
DATA = ROOT.parent / "shared" / "data"


def load_routed(name: str, kind: type[OnnxClassifier] = OnnxClassifier) -> OnnxClassifier:
    """The version of `name` that gets the most traffic, loaded as the service loads it
    (one CPU thread)."""
    version = max(RoutingTable.read(MODELS).routes[name].items(), key=lambda kv: kv[1])[0]
    return kind.load(MODELS / name / version, providers="cpu", threads=1)
