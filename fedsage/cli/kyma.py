"""``fedsage kyma``: list, describe and delete Kyma deployments; write their manifests."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.table import Table

from ..errors import ConfigurationError
from ._common import console, handle_errors

app = typer.Typer(help="Kyma deployments (SAP BTP Kyma, or local replicas).", no_args_is_help=True)
F = TypeVar("F", bound=Callable[..., Any])


def _fails_cleanly(func: F) -> F:
    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with handle_errors():
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


@app.command("list")
@_fails_cleanly
def list_() -> None:
    """List Kyma deployments."""
    from ..kyma.records import list_records

    table = Table()
    table.add_column("name", no_wrap=True)
    for column in ("target", "namespace", "replicas", "url"):
        table.add_column(column)
    for record in list_records():
        table.add_row(
            record.name,
            record.target,
            record.namespace or "",
            str(record.replicas),
            record.url or record.host or "",
        )
    console.print(table)


@app.command()
@_fails_cleanly
def describe(name: str) -> None:
    """Show a deployment's record as JSON (local ones with live gateway/replica status)."""
    from ..kyma.records import get_record

    record = get_record(name)
    if record.target == "local":
        from ..kyma.local import describe as describe_local

        record = describe_local(name)
    console.print_json(json.dumps(record.to_dict(), default=str))


@app.command()
@_fails_cleanly
def delete(
    name: str,
    kubeconfig: Path = typer.Option(
        None, help="Kubeconfig (default: the one recorded at deploy time)."
    ),
) -> None:
    """Delete a deployment: cluster objects (not the namespace), or local processes."""
    from ..kyma.manage import delete_deployment

    for line in delete_deployment(name, kubeconfig):
        console.print(f"deleted {line}")
    console.print(f"deleted {name}")


@app.command()
@_fails_cleanly
def manifests(
    job_or_name: str = typer.Argument(..., help="A Kyma deployment or a training job."),
    out: Path = typer.Option(..., "--out", help="Folder to write <name>.yaml into."),
    image: str = typer.Option(None, help="registry/repo@sha256:... (for a job)."),
    program: str = typer.Option(None, help="SAGEMAKER_PROGRAM (for a job)."),
    namespace: str = typer.Option("fedsage"),
    replicas: int = typer.Option(1),
    domain: str = typer.Option(None, help="Cluster domain; default: a short host."),
    jwt_issuer: str = typer.Option(None),
    jwks_uri: str = typer.Option(None),
    jwt_audience: list[str] = typer.Option(
        [], help="Accept only tokens issued for this audience (repeat for alternatives)."
    ),
    jwt_scope: list[str] = typer.Option(
        [], help="Accept only tokens carrying this scope (repeat: all are required)."
    ),
    allow_unauthenticated: bool = typer.Option(
        False, help="Expose the model without authentication (noAuth)."
    ),
) -> None:
    """Write the YAML fedsage applies (the pull Secret is left out: it holds a token).

    Local deployments have no manifests: naming one is an error.
    """
    from ..kyma.cluster.manifests import KymaSpec, build_manifests, to_yaml
    from ..kyma.names import derive_name
    from ..kyma.records import find_record

    record = find_record(job_or_name)
    if record is not None and record.target == "local":
        raise ConfigurationError(
            f"{job_or_name!r} is a local deployment (replicas behind a gateway on "
            "127.0.0.1): it has no Kubernetes manifests; deploy it to a cluster, or pass "
            "a training job name with --image to write the manifests for one"
        )
    if record is not None:
        name, objects = record.name, record.manifests
    else:
        if image is None:
            raise typer.BadParameter(
                "needed when JOB_OR_NAME is a training job", param_hint="--image"
            )
        name = derive_name(job_or_name)
        env = {"SAGEMAKER_PROGRAM": program, "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/code"}
        spec = KymaSpec(
            name=name,
            image=image,
            namespace=namespace,
            replicas=replicas,
            env=env if program else {},
            domain=domain,
            jwt_issuer=jwt_issuer,
            jwks_uri=jwks_uri,
            jwt_audiences=tuple(jwt_audience),
            jwt_scopes=tuple(jwt_scope),
            allow_unauthenticated=allow_unauthenticated,
            job_name=job_or_name,
        )
        objects = build_manifests(spec)
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{name}.yaml"
    target.write_text(to_yaml(objects))
    console.print(f"wrote {target}")
