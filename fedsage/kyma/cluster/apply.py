"""Apply Kyma manifests with the official ``kubernetes`` client and wait for the rollout.

* :func:`api_client` reads the kubeconfig :func:`find_kubeconfig` picks: the one named,
  else ``$KUBECONFIG``, else ``kubeconfig.yml`` in the working folder (fedml-aws's
  convention; with a warning, since a kubeconfig can run commands), else
  ``~/.kube/config``.
* :func:`apply_objects` does a server-side apply of each object (``PATCH`` with
  ``application/apply-patch+yaml``, ``fieldManager=fedsage``, ``force=true``), which is
  idempotent: applying the same objects twice changes nothing.
* :func:`rollout_status` mirrors ``kubectl rollout status`` as a pure function of a
  Deployment's data; :func:`wait_for_rollout` polls it (with a progress callback and a
  timeout) and, when the rollout fails or times out, raises a :class:`DeploymentError`
  carrying the pods' waiting reasons and recent events instead of hanging.
* :func:`wait_for_apirule` waits for the APIRule's ``status.state == Ready``.

Every :class:`kubernetes.client.ApiException` is translated in one place,
:func:`_api_errors`; messages carry the API's status and message, never a token.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import ConfigurationError, DeploymentError, import_extra

__all__ = [
    "FIELD_MANAGER",
    "RolloutStatus",
    "api_client",
    "apply_objects",
    "delete_objects",
    "diagnose",
    "find_kubeconfig",
    "rollout_status",
    "wait_for_apirule",
    "wait_for_rollout",
]

logger = logging.getLogger(__name__)

FIELD_MANAGER = "fedsage"
APPLY_PATCH = "application/apply-patch+yaml"
Progress = Callable[[str, dict[str, Any]], None]


def _kubernetes() -> Any:
    return import_extra("kubernetes", "kyma")


@contextlib.contextmanager
def _api_errors(what: str) -> Iterator[None]:
    """Translate ``ApiException`` (and connection errors) into :class:`DeploymentError`."""
    k8s = _kubernetes()
    import urllib3  # a dependency of kubernetes

    try:
        yield
    except k8s.client.exceptions.ApiException as exc:
        message = exc.reason or ""
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            message = json.loads(exc.body).get("message") or message
        hint = ""
        if exc.status in (401, 403):
            hint = "; check that the kubeconfig's credentials may manage this namespace"
        raise DeploymentError(f"{what} failed: HTTP {exc.status}: {message}{hint}") from exc
    except ValueError as exc:  # the client could not parse the answer (pydantic / JSON)
        raise DeploymentError(
            f"{what} failed: the API server's answer did not parse ({type(exc).__name__}); "
            "is the kubeconfig pointing at a Kubernetes API server?"
        ) from exc
    except (OSError, urllib3.exceptions.HTTPError) as exc:
        raise DeploymentError(f"{what} failed: cannot reach the cluster ({exc})") from exc


def find_kubeconfig(path: Path | str | None = None) -> Path:
    """Locate the kubeconfig: ``path``, ``$KUBECONFIG``, ``./kubeconfig.yml``, ``~/.kube/config``.

    A kubeconfig decides where the image and the ECR pull Secret go, and can run
    commands (``exec:`` credential plugins), so one that merely lies in the working
    folder never wins over the one the user named or exported: it is used only when
    ``$KUBECONFIG`` names no existing file, and then with a warning (Python warning and
    log) naming it.

    Parameters
    ----------
    path : path, optional
        An explicit kubeconfig; it must exist.

    Returns
    -------
    pathlib.Path
        The kubeconfig to use.

    Raises
    ------
    ConfigurationError
        If none of them exists.
    """
    if path is not None:
        candidates = [Path(path)]
    else:
        exported = os.environ.get("KUBECONFIG", "")
        candidates = [Path(p) for p in exported.split(os.pathsep) if p]
        candidates += [Path.cwd() / "kubeconfig.yml", Path.home() / ".kube" / "config"]
    for candidate in candidates:
        if not candidate.is_file():
            continue
        if path is None and candidate == Path.cwd() / "kubeconfig.yml":
            message = (
                f"using the kubeconfig {candidate} from the working folder: it decides "
                "which cluster receives the image and the ECR pull Secret, and can run "
                "commands; pass kubeconfig= or set KUBECONFIG to choose one explicitly"
            )
            logger.warning("%s", message)
            warnings.warn(message, UserWarning, stacklevel=2)
        return candidate
    raise ConfigurationError(
        "no kubeconfig found (looked at: " + ", ".join(map(str, candidates)) + "); download "
        "one for a Kyma service account and save it as kubeconfig.yml in the working folder, "
        "or set KUBECONFIG to its path"
    )


def api_client(kubeconfig: Path | str | None = None, context: str | None = None) -> Any:
    """Return a ``kubernetes.client.ApiClient`` for the kubeconfig (see :func:`find_kubeconfig`)."""
    k8s = _kubernetes()
    path = find_kubeconfig(kubeconfig)
    try:
        return k8s.config.new_client_from_config(config_file=str(path), context=context)
    except k8s.config.ConfigException as exc:
        raise ConfigurationError(f"cannot use the kubeconfig {path}: {exc}") from exc


def _apply_one(client: Any, obj: Mapping[str, Any], verb: str) -> Any:
    k8s = _kubernetes()
    core = k8s.client.CoreV1Api(client)
    apps = k8s.client.AppsV1Api(client)
    custom = k8s.client.CustomObjectsApi(client)
    kind, name = obj["kind"], obj["metadata"]["name"]
    namespace = obj["metadata"].get("namespace")
    kw: dict[str, Any] = {}
    if verb == "patch":
        kw = {
            "body": dict(obj),
            "field_manager": FIELD_MANAGER,
            "force": True,
            "_content_type": APPLY_PATCH,
        }
    if obj["apiVersion"] == "gateway.kyma-project.io/v2" and kind == "APIRule":
        method = getattr(custom, f"{verb}_namespaced_custom_object")
        return method("gateway.kyma-project.io", "v2", namespace, "apirules", name, **kw)
    methods: dict[str, tuple[Any, str]] = {
        "Namespace": (core, "namespace"),
        "Secret": (core, "namespaced_secret"),
        "Service": (core, "namespaced_service"),
        "Deployment": (apps, "namespaced_deployment"),
    }
    if kind not in methods:
        raise DeploymentError(f"fedsage does not apply objects of kind {kind}")
    api, suffix = methods[kind]
    method = getattr(api, f"{verb}_{suffix}")
    return method(name, **kw) if kind == "Namespace" else method(name, namespace, **kw)


def apply_objects(
    client: Any, objects: Sequence[Mapping[str, Any]], progress: Progress | None = None
) -> None:
    """Server-side apply ``objects`` in order (idempotent).

    Parameters
    ----------
    client : kubernetes.client.ApiClient
        From :func:`api_client`.
    objects : sequence of dict
        From :func:`fedsage.kyma.cluster.manifests.build_manifests` (and the pull Secret).
    progress : callable, default=None
        Called as ``progress("applied", {"kind", "name"})`` after each object.

    Raises
    ------
    DeploymentError
        If the API server refuses an object.
    """
    for obj in objects:
        kind, name = obj["kind"], obj["metadata"]["name"]
        with _api_errors(f"applying {kind} {name}"):
            _apply_one(client, obj, "patch")
        logger.info("applied %s %s", kind, name)
        if progress is not None:
            progress("applied", {"kind": kind, "name": name})


def delete_objects(client: Any, objects: Sequence[Mapping[str, Any]]) -> list[str]:
    """Delete ``objects`` in reverse order, leaving Namespaces; return what was deleted.

    Objects already gone are skipped.
    """
    k8s = _kubernetes()
    deleted = []
    for obj in reversed(objects):
        if obj["kind"] == "Namespace":
            continue
        label = f"{obj['kind']} {obj['metadata']['name']}"
        try:
            with _api_errors(f"deleting {label}"):
                _apply_one(client, obj, "delete")
        except DeploymentError as exc:
            cause = exc.__cause__
            if isinstance(cause, k8s.client.exceptions.ApiException) and cause.status == 404:
                continue
            raise
        deleted.append(label)
    return deleted


@dataclass(frozen=True)
class RolloutStatus:
    """One observation of a rollout: ``done``, ``failed`` and kubectl's message."""

    done: bool
    message: str
    failed: bool = False


def rollout_status(deployment: Mapping[str, Any]) -> RolloutStatus:
    """Judge a Deployment (as API data) the way ``kubectl rollout status`` does."""
    meta = deployment.get("metadata") or {}
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    name = meta.get("name", "?")
    if meta.get("generation", 0) > status.get("observedGeneration", 0):
        return RolloutStatus(False, "Waiting for deployment spec update to be observed...")
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Progressing" and (
            condition.get("reason") == "ProgressDeadlineExceeded"
        ):
            return RolloutStatus(
                False, f'deployment "{name}" exceeded its progress deadline', failed=True
            )
    wanted = spec.get("replicas", 1)
    updated = status.get("updatedReplicas", 0)
    replicas = status.get("replicas", 0)
    available = status.get("availableReplicas", 0)
    if updated < wanted:
        return RolloutStatus(
            False,
            f'Waiting for deployment "{name}" rollout to finish: '
            f"{updated} out of {wanted} new replicas have been updated...",
        )
    if replicas > updated:
        return RolloutStatus(
            False,
            f'Waiting for deployment "{name}" rollout to finish: '
            f"{replicas - updated} old replicas are pending termination...",
        )
    if available < updated:
        return RolloutStatus(
            False,
            f'Waiting for deployment "{name}" rollout to finish: '
            f"{available} of {updated} updated replicas are available...",
        )
    return RolloutStatus(True, f'deployment "{name}" successfully rolled out')


def diagnose(client: Any, namespace: str, name: str) -> list[str]:
    """Describe why the pods of deployment ``name`` are not ready: waiting reasons and events."""
    k8s = _kubernetes()
    core = k8s.client.CoreV1Api(client)
    lines: list[str] = []
    with _api_errors(f"listing the pods of {name}"):
        pods = client.sanitize_for_serialization(
            core.list_namespaced_pod(namespace, label_selector=f"app={name}")
        )
        events = client.sanitize_for_serialization(core.list_namespaced_event(namespace))
    pod_names = set()
    for pod in pods.get("items") or []:
        pod_name = pod["metadata"]["name"]
        pod_names.add(pod_name)
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            waiting = (status.get("state") or {}).get("waiting")
            if waiting:
                lines.append(
                    f"pod {pod_name} container {status.get('name')}: "
                    f"{waiting.get('reason')}: {waiting.get('message', '')}".rstrip(": ")
                )
    for event in events.get("items") or []:
        involved = event.get("involvedObject") or {}
        ours = involved.get("name") in pod_names or str(involved.get("name", "")).startswith(name)
        if ours and event.get("type") == "Warning":
            lines.append(
                f"event {involved.get('kind')} {involved.get('name')}: "
                f"{event.get('reason')}: {event.get('message')}"
            )
    return lines


def _wait(
    read: Callable[[], Any],
    judge: Callable[[Any], RolloutStatus],
    *,
    timeout: float,
    poll: float,
    progress: Progress | None,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> RolloutStatus:
    deadline = clock() + timeout
    last = ""
    while True:
        state = judge(read())
        if state.message != last:
            logger.info("%s", state.message)
            if progress is not None:
                progress("rollout", {"message": state.message, "done": state.done})
            last = state.message
        if state.done or state.failed or clock() >= deadline:
            return state
        sleep(poll)


def wait_for_rollout(
    client: Any,
    namespace: str,
    name: str,
    *,
    timeout: float = 600.0,
    poll: float = 2.0,
    progress: Progress | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Poll the Deployment until it has rolled out.

    Raises
    ------
    DeploymentError
        If the rollout fails or ``timeout`` passes; the message lists the pods'
        waiting reasons (``ImagePullBackOff``, ``CrashLoopBackOff``) and warning events.
    """
    apps = _kubernetes().client.AppsV1Api(client)

    def read() -> Any:
        with _api_errors(f"reading deployment {name}"):
            return client.sanitize_for_serialization(
                apps.read_namespaced_deployment_status(name, namespace)
            )

    state = _wait(
        read,
        rollout_status,
        timeout=timeout,
        poll=poll,
        progress=progress,
        sleep=sleep,
        clock=clock,
    )
    if not state.done:
        why = "\n  ".join(diagnose(client, namespace, name)) or "no pod reported a reason"
        verdict = (
            state.message if state.failed else f"timed out after {timeout:g} s: {state.message}"
        )
        raise DeploymentError(f"deployment {namespace}/{name} {verdict}\n  {why}")


def _apirule_state(obj: Mapping[str, Any]) -> RolloutStatus:
    status = obj.get("status") or {}
    state = status.get("state") or "Processing"
    text = f"APIRule state {state}" + (
        f": {status['description']}" if status.get("description") else ""
    )
    return RolloutStatus(state == "Ready", text, failed=state == "Error")


def wait_for_apirule(
    client: Any,
    namespace: str,
    name: str,
    *,
    timeout: float = 120.0,
    poll: float = 2.0,
    progress: Progress | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Poll the APIRule until ``status.state`` is ``Ready``.

    Raises
    ------
    DeploymentError
        If the state becomes ``Error`` or ``timeout`` passes.
    """
    custom = _kubernetes().client.CustomObjectsApi(client)

    def read() -> Any:
        with _api_errors(f"reading APIRule {name}"):
            return custom.get_namespaced_custom_object(
                "gateway.kyma-project.io", "v2", namespace, "apirules", name
            )

    state = _wait(
        read,
        _apirule_state,
        timeout=timeout,
        poll=poll,
        progress=progress,
        sleep=sleep,
        clock=clock,
    )
    if not state.done:
        raise DeploymentError(f"APIRule {namespace}/{name} is not Ready: {state.message}")
