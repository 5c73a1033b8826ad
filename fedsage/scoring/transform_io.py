"""Where a local transform job reads its files and writes its ``.out`` files.

Input (``data``):

- ``s3://bucket/prefix`` with ``S3Prefix``: every object of the local store whose key
  starts with ``prefix``: a string prefix, not a folder (``data/part`` takes
  ``data/part-1.csv`` and ``data/part-2.csv``), nested keys included;
- ``ManifestFile``: ``data`` names a JSON array ``[{"prefix": "s3://b/p/"}, "rel/key", ...]``;
  each entry is the object ``prefix + entry`` (which must exist);
- ``file://path`` or a plain path: that file, or every file under that folder.

Output: one ``<name>.out`` per input file under ``output_path``, where ``<name>`` is the
file's key after the last ``/`` of the prefix (so nested keys keep their subfolders:
``data/in/2024/a.csv`` under prefix ``data/in/`` writes ``<output_path>/2024/a.csv.out``),
or the manifest entry, or the path under the folder.  The service documents this only
by example; the subfolder rule follows that example.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from .._home import atomic_write, make_private_dirs
from ..errors import ConfigurationError
from ..storage import LocalStore, parse_s3_uri
from ..storage.local import store_root
from ..storage.uris import file_uri_to_path

__all__ = ["InputFile", "list_inputs", "output_uri", "store_output"]


@dataclass(frozen=True)
class InputFile:
    """One input object: its URI, the file that holds it, and its name under the output."""

    uri: str
    path: Path
    relative: str


def list_inputs(data: str, data_type: str) -> list[InputFile]:
    """The input files of ``data``, sorted by URI.

    Raises
    ------
    ConfigurationError
        When ``data`` is not an ``s3://``/``file://`` URI or a path, names nothing, or a
        manifest is malformed or lists a missing object.
    """
    if data_type == "ManifestFile":
        files = _manifest(data)
    elif data.startswith("s3://"):
        files = _prefix(data)
    else:
        files = _local(data)
    if not files:
        raise ConfigurationError(
            f"the data parameter of transform ({data!r}) names no input file: nothing is "
            "stored under that prefix (upload the files first, or check the URI)"
        )
    return sorted(files, key=lambda f: f.uri)


def _prefix(data: str) -> list[InputFile]:
    location = parse_s3_uri(data, "data")
    store = LocalStore(store_root(), location.bucket)
    base = location.key.rsplit("/", 1)[0] + "/" if "/" in location.key else ""
    return [
        InputFile(f"s3://{location.bucket}/{key}", store.path(key), key[len(base) :])
        for key in store.list(location.key)
    ]


def _local(data: str) -> list[InputFile]:
    path = file_uri_to_path(data, "data") if data.startswith("file://") else Path(data)
    path = path.expanduser().resolve()
    if path.is_file():
        return [InputFile(path.as_uri(), path, path.name)]
    if not path.is_dir():
        raise ConfigurationError(
            f"the data parameter of transform ({data!r}) is neither an s3:// URI of the local "
            "store nor an existing file or folder"
        )
    found = []
    for dirpath, dirs, names in os.walk(path):
        dirs[:] = [name for name in dirs if not name.startswith(".")]
        for name in names:
            if not name.startswith("."):
                file = Path(dirpath, name)
                found.append(InputFile(file.as_uri(), file, file.relative_to(path).as_posix()))
    return found


def _read_manifest(data: str) -> object:
    if data.startswith("s3://"):
        location = parse_s3_uri(data, "data")
        path = LocalStore(store_root(), location.bucket).path(location.key)
    else:
        path = file_uri_to_path(data, "data") if data.startswith("file://") else Path(data)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(f"the manifest file {data!r} does not exist") from None
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"the manifest file {data!r} is not JSON: {exc}") from exc


def _manifest(data: str) -> list[InputFile]:
    manifest = _read_manifest(data)
    shape = 'a JSON array [{"prefix": "s3://bucket/prefix/"}, "relative/key", ...]'
    if (
        not isinstance(manifest, list)
        or not manifest
        or not isinstance(manifest[0], dict)
        or not isinstance(manifest[0].get("prefix"), str)
        or not all(isinstance(entry, str) and entry for entry in manifest[1:])
    ):
        raise ConfigurationError(f"the manifest file {data!r} must be {shape}")
    prefix: str = manifest[0]["prefix"]
    files = []
    for entry in manifest[1:]:
        assert isinstance(entry, str)
        uri = prefix + entry
        if uri.startswith("s3://"):
            location = parse_s3_uri(uri, "manifest entry")
            path = LocalStore(store_root(), location.bucket).path(location.key)
        else:
            path = file_uri_to_path(uri, "manifest entry")
        if not path.is_file():
            raise ConfigurationError(
                f"the manifest file {data!r} lists {uri}, which does not exist; fix the "
                "manifest or upload the file"
            )
        files.append(InputFile(uri, path, entry.lstrip("/")))
    return files


def output_uri(output_path: str, relative: str) -> str:
    """The URI of the ``.out`` file for an input file named ``relative``."""
    return f"{output_path.rstrip('/')}/{relative}.out"


def store_output(uri: str, temp: Path) -> str:
    """Move the finished ``temp`` file to ``uri`` (local store or ``file://``) at once.

    Readers never see a partial ``.out``: the file is renamed into place, or copied to a
    temporary name and renamed.
    """
    if uri.startswith("file://"):
        target = file_uri_to_path(uri, "output_path")
        make_private_dirs(target.parent)
        try:
            os.replace(temp, target)
        except OSError:  # another file system
            with atomic_write(target) as out, open(temp, "rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
            temp.unlink()
        return uri
    location = parse_s3_uri(uri, "output_path")
    return LocalStore(store_root(), location.bucket).put_temp_file(location.key, temp)
