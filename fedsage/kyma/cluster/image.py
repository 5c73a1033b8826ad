"""Assemble an OCI / Docker image without Docker, and push it with the registry API.

An image is a manifest naming a config blob and layer blobs.  fedsage derives its
image from a base (the training runtime's image, a Python base, an OCI layout on disk,
or nothing at all) by appending its own layers (:mod:`fedsage.kyma.cluster.layers`) and
writing a new config:

* the base manifest is fetched (an index is resolved to ``linux/amd64``) and its
  media-type family (OCI or Docker schema 2) is kept for every new object;
* ``rootfs.diff_ids`` get the sha256 of each new *uncompressed* tar, the manifest's
  layer descriptors the sha256 of each *gzip blob*;
* the config sets ``Env``, ``Cmd``, ``ExposedPorts`` (``8080/tcp``) and ``WorkingDir``.

:func:`push_image` uploads what the target repository lacks (``HEAD`` first, then a
cross-repository mount when the blob lives in the same registry, else a chunked
upload), then puts the manifest, unless the tag already points at the same digest.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ...errors import DeploymentError
from .layers import Layer, sha256_file
from .registry_client import REPOSITORY_RE, TAG_RE, RegistryClient

__all__ = [
    "BaseImage",
    "BlobRef",
    "ImagePlan",
    "PushedImage",
    "base_from_registry",
    "plan_image",
    "push_image",
    "scratch_base",
]

logger = logging.getLogger(__name__)

OCI = {
    "index": "application/vnd.oci.image.index.v1+json",
    "manifest": "application/vnd.oci.image.manifest.v1+json",
    "config": "application/vnd.oci.image.config.v1+json",
    "layer": "application/vnd.oci.image.layer.v1.tar+gzip",
}
DOCKER = {
    "index": "application/vnd.docker.distribution.manifest.list.v2+json",
    "manifest": "application/vnd.docker.distribution.manifest.v2+json",
    "config": "application/vnd.docker.container.image.v1+json",
    "layer": "application/vnd.docker.image.rootfs.diff.tar.gzip",
}
MANIFEST_TYPES = [OCI["manifest"], DOCKER["manifest"], OCI["index"], DOCKER["index"]]
EPOCH = "1970-01-01T00:00:00Z"
Family = Literal["oci", "docker"]
Progress = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class BlobRef:
    """Where a blob's bytes come from: a local file, or a repository of a registry."""

    media_type: str
    digest: str
    size: int
    path: Path | None = None
    registry: RegistryClient | None = None
    repository: str | None = None

    def descriptor(self) -> dict[str, Any]:
        """The OCI descriptor ``{mediaType, digest, size}``."""
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


@dataclass(frozen=True)
class BaseImage:
    """A parsed base image: its family, config (as data) and layer blobs.

    Build one with :func:`scratch_base`, :func:`base_from_oci_layout` or
    :func:`base_from_registry`.
    """

    family: Family
    config: dict[str, Any]
    layers: tuple[BlobRef, ...] = ()
    name: str | None = None
    digest: str | None = None


@dataclass(frozen=True)
class ImagePlan:
    """An assembled image, ready to push: manifest bytes and every blob it names."""

    family: Family
    manifest: bytes
    config: bytes
    blobs: tuple[BlobRef, ...] = field(default=())

    @property
    def media_type(self) -> str:
        """The manifest's media type."""
        return (OCI if self.family == "oci" else DOCKER)["manifest"]

    @property
    def digest(self) -> str:
        """``sha256:<hex>`` of the manifest bytes: the image digest."""
        return "sha256:" + hashlib.sha256(self.manifest).hexdigest()


@dataclass(frozen=True)
class PushedImage:
    """Where an image was pushed.  ``reference`` pins it by digest."""

    registry: str
    repository: str
    tag: str
    digest: str

    @property
    def reference(self) -> str:
        """``host/repository@sha256:...``, for a Deployment's ``image``."""
        return f"{self.registry}/{self.repository}@{self.digest}"


def scratch_base() -> BaseImage:
    """An empty OCI base (like ``FROM scratch``): linux/amd64, no layers."""
    return BaseImage(
        family="oci",
        config={
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": []},
            "history": [],
        },
    )


def _family_of(media_type: str) -> Family:
    if media_type in (OCI["manifest"], OCI["index"]):
        return "oci"
    if media_type in (DOCKER["manifest"], DOCKER["index"]):
        return "docker"
    raise DeploymentError(f"unsupported base manifest type {media_type!r}")


def _pick_platform(index: dict[str, Any], where: str) -> dict[str, Any]:
    for entry in index.get("manifests", []):
        platform = entry.get("platform") or {}
        if platform.get("os") == "linux" and platform.get("architecture") == "amd64":
            return dict(entry)
    raise DeploymentError(f"the base image {where} has no linux/amd64 variant")


def _base(
    family: Family,
    manifest: dict[str, Any],
    config: dict[str, Any],
    blob: Any,
    name: str,
    digest: str,
) -> BaseImage:
    layers = tuple(blob(d["mediaType"], d["digest"], d["size"]) for d in manifest.get("layers", []))
    if len(layers) != len(config.get("rootfs", {}).get("diff_ids", [])):
        raise DeploymentError(f"the base image {name} has inconsistent layers and diff_ids")
    return BaseImage(family=family, config=config, layers=layers, name=name, digest=digest)


def base_from_registry(client: RegistryClient, repository: str, reference: str) -> BaseImage:
    """Read a base image's manifest and config from a registry.

    An image index (or Docker manifest list) is resolved to its ``linux/amd64`` entry.
    Layers are not downloaded here; :func:`push_image` mounts or copies them.
    """
    body, media_type, digest = client.get_manifest(repository, reference, MANIFEST_TYPES)
    manifest = json.loads(body)
    media_type = manifest.get("mediaType", media_type)
    if media_type in (OCI["index"], DOCKER["index"]):
        entry = _pick_platform(manifest, f"{repository}:{reference}")
        body, media_type, digest = client.get_manifest(repository, entry["digest"], MANIFEST_TYPES)
        manifest = json.loads(body)
        media_type = manifest.get("mediaType", entry.get("mediaType", media_type))
    family = _family_of(media_type)
    config = json.loads(client.get_blob(repository, manifest["config"]["digest"]))
    name = f"{client.host}/{repository}:{reference}"

    def blob(media: str, d: str, size: int) -> BlobRef:
        return BlobRef(media, d, size, registry=client, repository=repository)

    return _base(family, manifest, config, blob, name, digest)


def _merge_env(env: list[str], extra: Mapping[str, str]) -> list[str]:
    kept = [item for item in env if item.split("=", 1)[0] not in extra]
    return kept + [f"{key}={value}" for key, value in extra.items()]


def plan_image(
    base: BaseImage,
    layers: Sequence[Layer],
    *,
    env: Mapping[str, str] | None = None,
    command: Sequence[str] | None = ("serve",),
    entrypoint: Sequence[str] | None = None,
    working_dir: str | None = "/opt/ml/code",
    port: int = 8080,
    labels: Mapping[str, str] | None = None,
    created: str = EPOCH,
) -> ImagePlan:
    """Append ``layers`` to ``base`` and write the new config and manifest.

    Parameters
    ----------
    base : BaseImage
        The image to derive from.
    layers : sequence of Layer
        New layers, in order (e.g. requirements, then the serving bundle).
    env : mapping, default=None
        Variables added to (or replacing those of) the base's ``Env``.
    command : sequence of str or None, default=("serve",)
        The config's ``Cmd`` (SageMaker runs ``docker run <image> serve``); ``None``
        keeps the base's.
    entrypoint : sequence of str, default=None
        A new ``Entrypoint``; ``None`` keeps the base's.
    working_dir : str or None, default="/opt/ml/code"
        The ``WorkingDir``; ``None`` keeps the base's.
    port : int, default=8080
        Added to ``ExposedPorts`` as ``<port>/tcp``.
    labels : mapping, default=None
        Added to the config's ``Labels``.
    created : str, default="1970-01-01T00:00:00Z"
        The config's ``created``; fixed by default so that plans are reproducible.

    Returns
    -------
    ImagePlan
        Manifest and config bytes, and every blob the manifest names.
    """
    kinds = OCI if base.family == "oci" else DOCKER
    config = copy.deepcopy(base.config)
    run = config.setdefault("config", {}) or {}
    config["config"] = run
    run["Env"] = _merge_env(run.get("Env") or [], dict(env or {}))
    if command is not None:
        run["Cmd"] = list(command)
    if entrypoint is not None:
        run["Entrypoint"] = list(entrypoint)
    if working_dir is not None:
        run["WorkingDir"] = working_dir
    run["ExposedPorts"] = {**(run.get("ExposedPorts") or {}), f"{port}/tcp": {}}
    if labels:
        run["Labels"] = {**(run.get("Labels") or {}), **labels}
    config["created"] = created
    config.setdefault("rootfs", {"type": "layers", "diff_ids": []})
    config["rootfs"]["diff_ids"] = list(config["rootfs"].get("diff_ids", [])) + [
        layer.diff_id for layer in layers
    ]
    config["history"] = list(config.get("history") or []) + [
        {"created": created, "created_by": f"fedsage: add {layer.path.name}"} for layer in layers
    ]
    config_bytes = json.dumps(config, separators=(",", ":"), sort_keys=True).encode()
    config_ref = BlobRef(
        kinds["config"], "sha256:" + hashlib.sha256(config_bytes).hexdigest(), len(config_bytes)
    )
    new = tuple(BlobRef(kinds["layer"], ly.digest, ly.size, path=ly.path) for ly in layers)
    all_layers = base.layers + new
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": kinds["manifest"],
        "config": config_ref.descriptor(),
        "layers": [blob.descriptor() for blob in all_layers],
    }
    if base.family == "oci" and base.name and base.digest:
        manifest["annotations"] = {
            "org.opencontainers.image.base.name": base.name,
            "org.opencontainers.image.base.digest": base.digest,
        }
    body = json.dumps(manifest, separators=(",", ":")).encode()
    return ImagePlan(base.family, body, config_bytes, (config_ref, *all_layers))


def _push_blob(
    client: RegistryClient, repository: str, blob: BlobRef, config: bytes, workdir: Path
) -> str:
    """Make ``blob`` present in ``repository``; return what was done."""
    if client.blob_exists(repository, blob.digest):
        return "exists"
    upload_url = None
    if blob.registry is not None and blob.registry.url == client.url and blob.repository:
        upload_url = client.mount_blob(repository, blob.digest, blob.repository)
        if upload_url is None:
            return "mounted"
    path = blob.path
    if path is None and blob.registry is None:  # the config
        path = workdir / blob.digest.replace(":", "-")
        path.write_bytes(config)
    elif path is None:  # in another registry (or the mount was declined): copy it
        assert blob.registry is not None and blob.repository is not None
        path = blob.registry.download_blob(
            blob.repository, blob.digest, workdir / blob.digest.replace(":", "-")
        )
    client.upload_blob(repository, path, blob.digest, upload_url=upload_url)
    return "uploaded"


def push_image(
    plan: ImagePlan,
    client: RegistryClient,
    repository: str,
    tag: str,
    *,
    workdir: Path,
    progress: Progress | None = None,
) -> PushedImage:
    """Push the blobs ``repository`` lacks, then the manifest under ``tag``.

    Parameters
    ----------
    plan : ImagePlan
        From :func:`plan_image`.
    client : RegistryClient
        The target registry.
    repository, tag : str
        Where to push (validated against the distribution spec's rules).
    workdir : pathlib.Path
        Scratch folder for blobs copied from another registry.
    progress : callable, default=None
        Called as ``progress(event, info)`` with events ``blob`` (``info``: digest,
        size, action ``exists``/``mounted``/``uploaded``) and ``manifest``.

    Returns
    -------
    PushedImage
        With the digest to pin in the Deployment.

    Raises
    ------
    DeploymentError
        If a name is invalid, a blob does not match its digest, or the registry
        refuses a request.  Blobs go first; the manifest is never pushed after a
        failure.
    """
    if not REPOSITORY_RE.fullmatch(repository) or len(repository) > 255:
        raise DeploymentError(
            f"repository {repository!r} is not a valid registry name (lowercase letters, "
            "digits, separators '.', '_', '__', '-', and '/' between components)"
        )
    if not TAG_RE.fullmatch(tag):
        raise DeploymentError(f"tag {tag!r} is not valid ([a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}})")
    workdir.mkdir(parents=True, exist_ok=True)
    client.ping()
    for blob in plan.blobs:
        if blob.path is not None:
            digest, size = sha256_file(blob.path)
            if (digest, size) != (blob.digest, blob.size):
                raise DeploymentError(
                    f"{blob.path} no longer matches {blob.digest} (size {blob.size}); it "
                    "changed after the image was assembled: build the image again"
                )
        action = _push_blob(client, repository, blob, plan.config, workdir)
        logger.info("blob %s (%d bytes) %s in %s", blob.digest, blob.size, action, repository)
        if progress is not None:
            progress("blob", {"digest": blob.digest, "size": blob.size, "action": action})
    current = client.manifest_digest(repository, tag, [plan.media_type])
    if current != plan.digest:
        client.put_manifest(repository, tag, plan.manifest, plan.media_type)
    action = "exists" if current == plan.digest else "pushed"
    if progress is not None:
        progress("manifest", {"digest": plan.digest, "tag": tag, "action": action})
    logger.info("manifest %s:%s %s (%s)", repository, tag, action, plan.digest)
    return PushedImage(client.host, repository, tag, plan.digest)
