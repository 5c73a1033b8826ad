"""OCI image layouts on disk (``oci-layout``, ``index.json``, ``blobs/sha256/``).

A layout can serve as a base image when there is no registry to pull from (an air-gapped
base, a test), and :func:`write_oci_layout` exports a plan for inspection by other tools.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ...errors import DeploymentError
from .image import OCI, BaseImage, BlobRef, ImagePlan, _base, _family_of, _pick_platform

__all__ = ["base_from_oci_layout", "write_oci_layout"]

DOCKER_INDEX = "application/vnd.docker.distribution.manifest.list.v2+json"


def base_from_oci_layout(layout: Path, ref_name: str | None = None) -> BaseImage:
    """Read a base image from an OCI image layout folder (``index.json`` + ``blobs/``).

    Parameters
    ----------
    layout : pathlib.Path
        The layout folder.
    ref_name : str, default=None
        The ``org.opencontainers.image.ref.name`` annotation to pick; default: the
        only (or the ``linux/amd64``) manifest.
    """

    def read(digest: str) -> bytes:
        return (layout / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()

    try:
        index = json.loads((layout / "index.json").read_text())
        entries = index.get("manifests", [])
        if ref_name is not None:
            entries = [
                e
                for e in entries
                if (e.get("annotations") or {}).get("org.opencontainers.image.ref.name") == ref_name
            ]
        entry = (
            entries[0] if len(entries) == 1 else _pick_platform({"manifests": entries}, str(layout))
        )
        manifest = json.loads(read(entry["digest"]))
        if manifest.get("mediaType", entry["mediaType"]) in (OCI["index"], DOCKER_INDEX):
            entry = _pick_platform(manifest, str(layout))
            manifest = json.loads(read(entry["digest"]))
        family = _family_of(manifest.get("mediaType", entry["mediaType"]))
        config = json.loads(read(manifest["config"]["digest"]))
    except (OSError, ValueError, KeyError, IndexError) as exc:
        raise DeploymentError(f"{layout} is not a readable OCI image layout: {exc}") from exc

    def blob(media: str, d: str, size: int) -> BlobRef:
        return BlobRef(media, d, size, path=layout / "blobs" / "sha256" / d.split(":", 1)[1])

    return _base(family, manifest, config, blob, str(layout), entry["digest"])


def write_oci_layout(plan: ImagePlan, layout: Path, ref_name: str = "latest") -> Path:
    """Write ``plan`` as an OCI image layout folder (only local blobs are supported)."""
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (blobs / plan.digest.split(":", 1)[1]).write_bytes(plan.manifest)
    for blob in plan.blobs:
        target = blobs / blob.digest.split(":", 1)[1]
        if blob.path is not None:
            shutil.copyfile(blob.path, target)
        elif blob.registry is None:
            target.write_bytes(plan.config)
        else:
            raise DeploymentError("write_oci_layout needs every blob on disk")
    index = {
        "schemaVersion": 2,
        "mediaType": OCI["index"],
        "manifests": [
            {
                "mediaType": plan.media_type,
                "digest": plan.digest,
                "size": len(plan.manifest),
                "platform": {"architecture": "amd64", "os": "linux"},
                "annotations": {"org.opencontainers.image.ref.name": ref_name},
            }
        ],
    }
    (layout / "index.json").write_text(json.dumps(index))
    return layout
