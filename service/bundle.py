"""A release bundle on disk: `model.tflite` plus the `manifest.json` that describes it."""

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from service.errors import Refusal

MANIFEST_NAME = "manifest.json"
MODEL_NAME = "model.tflite"
# The same model with a fixed batch of N (manifest `batched`), for samples that arrive together.
BATCHED_MODEL_NAME = "model_batched.tflite"
MANIFEST_SCHEMA = 1
LFS_POINTER_PREFIX = b"version https://git-lfs.github.com/spec/v1"
# What a model name may hold: it is one segment of a URL path (/v2/models/{name}).
NOT_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9_.-]+")
DEFAULT_MODEL_NAME = "model"


class BundleError(Refusal):
    """The bundle cannot be served; the message says what is wrong and how to fix it, `fault`
    names the kind of problem for /api/health/ (and the smoke check)."""

    fault = "bundle"


class CorruptModel(BundleError):
    """A model file whose bytes are not the ones the manifest names."""

    fault = "model_file_corrupt"


class LfsPointer(BundleError):
    """A model file that is still a Git LFS pointer: its object never reached the bundle."""

    fault = "lfs_pointer"

    def __init__(self, file_name: str, oid: str) -> None:
        super().__init__(f"{file_name} is a Git LFS pointer (object {oid[:12]})")
        self.file_name, self.oid = file_name, oid


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in chunks so a large model never sits in memory twice."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_lfs_pointer(path: Path) -> bool:
    """True when the file is a Git LFS pointer (the object itself was never fetched)."""
    with open(path, "rb") as file:
        return file.read(len(LFS_POINTER_PREFIX)) == LFS_POINTER_PREFIX


def read_manifest(model_dir: Path) -> dict[str, Any]:
    """The bundle's manifest, checked for the fields the predictor relies on."""
    manifest_path = Path(model_dir) / MANIFEST_NAME
    if not manifest_path.is_file():  # messages name files relative to the bundle: public
        raise BundleError(
            f"{MANIFEST_NAME} is missing from the bundle folder; point MODEL_DIR at a bundle "
            "written by the convert stage or by promotion (model.tflite + manifest.json)"
        )
    if is_lfs_pointer(manifest_path):
        raise BundleError(
            f"{manifest_path.name} is a Git LFS pointer; the LFS object was not fetched at build "
            "time (run `git lfs pull` in the build)"
        )
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BundleError(
            f"{MANIFEST_NAME} is not valid JSON ({error}); rebuild the bundle"
        ) from None
    missing = [
        key
        for key in ("schema", "model_file", "sha256", "input", "labels", "preprocessing")
        if key not in manifest
    ]
    if missing:
        raise BundleError(f"{MANIFEST_NAME} lacks {', '.join(missing)}; rebuild the bundle")
    if manifest["schema"] != MANIFEST_SCHEMA:
        raise BundleError(
            f"{MANIFEST_NAME} has schema {manifest['schema']}, this service reads schema "
            f"{MANIFEST_SCHEMA}; rebuild the bundle with this version of the pipeline"
        )
    batched = manifest.get("batched")
    if batched is not None and not (
        isinstance(batched, dict)
        and isinstance(batched.get("file"), str)
        and isinstance(batched.get("sha256"), str)
        and isinstance(batched.get("batch_size"), int)
        and batched["batch_size"] > 1
    ):
        raise BundleError(
            f"{MANIFEST_NAME} names a batched model without its file, sha256 and batch_size "
            "(an integer above 1); rebuild the bundle"
        )
    return manifest


def read_model_bytes(model_path: Path, expected_sha256: str) -> bytes:
    """The model's bytes, refused if absent, an LFS pointer, or not the file the manifest names.

    Messages name the file relative to the bundle, never an absolute path: they are public.
    """
    try:
        model_bytes = model_path.read_bytes()
    except FileNotFoundError:
        raise BundleError(f"{model_path.name} is missing from the bundle folder") from None
    except OSError as error:
        raise BundleError(f"{model_path.name} cannot be read ({error.strerror})") from None
    if model_bytes.startswith(LFS_POINTER_PREFIX):
        oid = re.search(rb"oid sha256:([0-9a-f]{64})", model_bytes[:1024])
        raise LfsPointer(model_path.name, oid.group(1).decode() if oid else "unknown")
    actual_sha256 = hashlib.sha256(model_bytes).hexdigest()
    if actual_sha256 != expected_sha256:
        raise CorruptModel(
            f"{model_path.name} is corrupt: its sha256 is {actual_sha256} but the manifest "
            f"names {expected_sha256} (its Git LFS object, or a bundle mixed from two "
            "releases); promote it again, which checks the remote's copy and uploads it anew"
        )
    return model_bytes


def release_model_name(manifest: dict[str, Any]) -> str:
    """The name the service serves the bundle under: its source model's file name, no suffix.

    It stays the same from one release to the next (the version changes), so a client's URL
    does too; characters that cannot stand in one URL path segment become "-".
    """
    source_file = str((manifest.get("source_model") or {}).get("file") or "")
    stem = source_file.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return NOT_NAME_CHARACTERS.sub("-", stem).strip("-.") or DEFAULT_MODEL_NAME
