"""The versioned model registry shared by the compression pipeline and the service."""

from .defaults import DEFAULT_FILE, read_default_model, write_default_model
from .manifest import (
    LABEL_SETUPS,
    MANIFEST_FILE,
    MAX_ROUTE_WEIGHT,
    ROUTES_FILE,
    SAFE_NAME_MAX_LENGTH,
    SAFE_NAME_PATTERN,
    SCHEMA_VERSION,
    FileEntry,
    Lineage,
    Manifest,
    ModelRef,
    RoutingTable,
    ShadowRoute,
    check_safe_name,
    check_shadow,
    check_weights,
)
from .store import (
    ChecksumMismatchError,
    RegistryError,
    VersionExistsError,
    file_entries,
    first_error,
    list_models,
    list_versions,
    next_version,
    publish_version,
    sha256_file,
    verify_version,
)

__all__ = [
    "DEFAULT_FILE", "read_default_model", "write_default_model",
    "LABEL_SETUPS", "MANIFEST_FILE", "MAX_ROUTE_WEIGHT", "ROUTES_FILE", "SAFE_NAME_MAX_LENGTH",
    "SAFE_NAME_PATTERN", "SCHEMA_VERSION", "FileEntry", "Lineage", "Manifest",
    "ModelRef", "RoutingTable", "ShadowRoute", "check_safe_name", "check_shadow",
    "check_weights", "ChecksumMismatchError",
    "RegistryError", "VersionExistsError", "file_entries", "first_error", "list_models",
    "list_versions", "next_version", "publish_version", "sha256_file", "verify_version",
]
