"""Reading and writing registry versions on disk: checksums and atomic publication."""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path

from pydantic import ValidationError

from .manifest import MANIFEST_FILE, FileEntry, Manifest, ModelRef


class RegistryError(Exception):
    """A registry version is missing, incomplete, corrupt or already exists."""


class VersionExistsError(RegistryError):
    pass


class ChecksumMismatchError(RegistryError):
    pass


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def file_entries(folder: Path) -> dict[str, FileEntry]:
    """Checksums of every file in `folder` except the manifest itself."""
    entries = {}
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file() and path.name != MANIFEST_FILE:
            rel = path.relative_to(folder).as_posix()
            entries[rel] = FileEntry(sha256=sha256_file(path), bytes=path.stat().st_size)
    return entries


def first_error(exc: ValueError) -> str:
    """One line for a manifest that does not validate: where and what (pydantic's first
    error), or the exception's first line."""
    if isinstance(exc, ValidationError):
        error = exc.errors()[0]
        where = ".".join(map(str, error["loc"])) or "manifest"
        return f"{where}: {error['msg'].removeprefix('Value error, ')}"
    return str(exc).splitlines()[0]


def verify_version(version_dir: Path) -> Manifest:
    """Read a version's manifest and check every listed file against its sha256.

    Raises RegistryError with a one-line reason when anything is missing or altered.
    """
    version_dir = Path(version_dir)
    if not (version_dir / MANIFEST_FILE).is_file():
        raise RegistryError(f"{version_dir}: no {MANIFEST_FILE}")
    try:
        manifest = Manifest.read(version_dir)
    except ValueError as exc:
        raise RegistryError(f"{version_dir}: invalid {MANIFEST_FILE}: "
                            f"{first_error(exc)}") from exc
    for required in (manifest.model_file, manifest.tokenizer_file):
        if required not in manifest.files:
            raise RegistryError(f"{version_dir}: manifest lists no checksum for {required}")
    for rel, entry in manifest.files.items():
        path = version_dir / rel
        if not path.is_file():
            raise RegistryError(f"{version_dir}: file {rel} is missing")
        if path.stat().st_size != entry.bytes or sha256_file(path) != entry.sha256:
            raise ChecksumMismatchError(
                f"{version_dir}: {rel} does not match its sha256 in the manifest "
                "(corrupt or modified)"
            )
    return manifest


def list_versions(root: Path, name: str) -> list[str]:
    """Published versions of a model (folders with a manifest), numeric ones in order."""
    folder = Path(root) / name
    if not folder.is_dir():
        return []
    versions = [
        p.name
        for p in folder.iterdir()
        if p.is_dir() and not p.name.startswith(".") and (p / MANIFEST_FILE).is_file()
    ]
    return sorted(versions, key=lambda v: (not v.isdigit(), int(v) if v.isdigit() else 0, v))


def list_models(root: Path) -> list[str]:
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(
        p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
        and list_versions(root, p.name)
    )


def next_version(root: Path, name: str) -> str:
    numeric = [int(v) for v in list_versions(root, name) if v.isdigit()]
    return str(max(numeric, default=0) + 1)


def publish_version(
    root: Path,
    manifest: Manifest,
    files: Mapping[str, Path],
    force: bool = False,
) -> Path:
    """Write a registry version atomically and return its folder.

    `files` maps names inside the version (e.g. "model.onnx") to source paths. The
    version is assembled in a hidden temporary folder beside its destination and
    renamed into place, so a crash leaves either the whole version or none of it.
    An existing version is refused unless `force`.
    """
    ref = ModelRef(name=manifest.name, version=manifest.version)
    final = ref.path(root)
    if final.exists() and not force:
        raise VersionExistsError(
            f"registry version {ref} already exists at {final}; pass --force to replace it"
        )
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.parent / f".staging-{ref.version}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        for rel, source in files.items():
            target = staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            os.chmod(target, 0o644)  # readable by a non-root user in a container
        complete = manifest.model_copy(update={"files": file_entries(staging)})
        complete.write(staging)
        verify_version(staging)
        if final.exists():
            trash = final.parent / f".trash-{ref.version}-{uuid.uuid4().hex[:8]}"
            os.rename(final, trash)
            os.rename(staging, final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final
