"""``fedsage kyma``: list, describe and delete Kyma deployments; write their manifests."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigurationError
from ._common import (
    command,
    echo,
    group,
    handle_errors,
    number,
    print_json,
    print_records,
    usage_error,
)

HELP = "Kyma deployments (SAP BTP Kyma, or local replicas)."


def configure(parser: argparse.ArgumentParser) -> None:
    """Fill the ``fedsage kyma`` group's parser."""
    commands = group(parser, HELP)
    command(commands, "list", list_)
    command(commands, "describe", describe).add_argument("name")
    deleted = command(commands, "delete", delete)
    deleted.add_argument("name")
    deleted.add_argument("--kubeconfig", type=Path, default=None,
                         help="Kubeconfig (default: the one recorded at deploy time).")
    written = command(commands, "manifests", manifests)
    add = written.add_argument
    add("job_or_name", help="A Kyma deployment or a training job.")
    add("--out", type=Path, required=True, help="Folder to write <name>.yaml into.")
    add("--image", default=None, help="registry/repo@sha256:... (for a job).")
    add("--program", default=None, help="SAGEMAKER_PROGRAM (for a job).")
    add("--namespace", default="fedsage", help="[default: %(default)s]")
    add("--replicas", type=number(int), default=1, help="[default: %(default)s]")
    add("--domain", default=None, help="Cluster domain; default: a short host.")
    add("--jwt-issuer", default=None)
    add("--jwks-uri", default=None)
    add("--jwt-audience", action="append", default=[],
        help="Accept only tokens issued for this audience (repeat for alternatives).")
    add("--jwt-scope", action="append", default=[],
        help="Accept only tokens carrying this scope (repeat: all are required).")
    add("--allow-unauthenticated", action=argparse.BooleanOptionalAction, default=False,
        help="Expose the model without authentication (noAuth).")


def list_(args: argparse.Namespace) -> None:
    """List Kyma deployments."""
    from ..kyma.records import list_records

    with handle_errors():
        records = list_records()
    rows = [
        [
            record.name,
            record.target,
            record.namespace or "",
            str(record.replicas),
            record.url or record.host or "",
        ]
        for record in records
    ]
    print_records(["name", "target", "namespace", "replicas", "url"], rows)


def describe(args: argparse.Namespace) -> None:
    """Show a deployment's record as JSON (local ones with live gateway/replica status)."""
    from ..kyma.records import get_record

    with handle_errors():
        record = get_record(args.name)
        if record.target == "local":
            from ..kyma.local import describe as describe_local

            record = describe_local(args.name)
    print_json(record.to_dict())


def delete(args: argparse.Namespace) -> None:
    """Delete a deployment: cluster objects (not the namespace), or local processes."""
    from ..kyma.manage import delete_deployment

    with handle_errors():
        for line in delete_deployment(args.name, args.kubeconfig):
            echo(f"deleted {line}")
    echo(f"deleted {args.name}")


def manifests(args: argparse.Namespace) -> None:
    """Write the YAML fedsage applies (the pull Secret is left out: it holds a token).

    Local deployments have no manifests: naming one is an error.
    """
    with handle_errors():
        target = _write_manifests(args)
    echo(f"wrote {target}")


def _write_manifests(args: argparse.Namespace) -> Path:
    from ..kyma.cluster.manifests import KymaSpec, build_manifests, to_yaml
    from ..kyma.names import derive_name
    from ..kyma.records import find_record

    job_or_name: str = args.job_or_name
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
        if args.image is None:
            usage_error(args, "argument --image: needed when JOB_OR_NAME is a training job")
        name = derive_name(job_or_name)
        env = {"SAGEMAKER_PROGRAM": args.program, "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/code"}
        spec = KymaSpec(
            name=name,
            image=args.image,
            namespace=args.namespace,
            replicas=args.replicas,
            env=env if args.program else {},
            domain=args.domain,
            jwt_issuer=args.jwt_issuer,
            jwks_uri=args.jwks_uri,
            jwt_audiences=tuple(args.jwt_audience),
            jwt_scopes=tuple(args.jwt_scope),
            allow_unauthenticated=args.allow_unauthenticated,
            job_name=job_or_name,
        )
        objects = build_manifests(spec)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{name}.yaml"
    target.write_text(to_yaml(objects))
    return target
