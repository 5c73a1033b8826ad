"""Kyma: serving bundle, image assembly and push, Kubernetes manifests, apply and rollout.

Modules (none needs an extra at import time; ``apply`` imports ``kubernetes`` and
``ecr`` imports ``boto3`` when called):

* :mod:`~fedsage.kyma.bundle` -- model and code laid out as ``/opt/ml/{model,code}``
* :mod:`~fedsage.kyma.layers` -- reproducible gzip layers
* :mod:`~fedsage.kyma.requirements_layer` -- ``requirements.txt`` as a layer (uv, wheels only)
* :mod:`~fedsage.kyma.registry_client` -- the OCI Distribution API on httpx
* :mod:`~fedsage.kyma.image` -- base images, image plans, push
* :mod:`~fedsage.kyma.oci_layout` -- OCI layouts on disk (bases without a registry)
* :mod:`~fedsage.kyma.ecr` -- ECR repository and login
* :mod:`~fedsage.kyma.manifests` -- Namespace, Secret, Deployment, Service, APIRule v2
* :mod:`~fedsage.kyma.apply` -- server-side apply, rollout status, diagnostics
* :mod:`~fedsage.kyma.records` -- deployment records in fedsage's registry
* :mod:`~fedsage.kyma.deploy` -- ``deploy_to_kyma`` orchestration (local or cluster)
* :mod:`~fedsage.kyma.local` -- the local target: replicas behind one gateway URL
* :mod:`~fedsage.kyma.gateway` -- the local gateway process (proxy, health, restarts)
* :mod:`~fedsage.kyma.invoke` -- ``invoke_kyma_endpoint``
"""
