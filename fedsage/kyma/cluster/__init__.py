"""The cluster target: build and push an image without Docker, apply it to SAP BTP Kyma.

:func:`deploy` is the entry the backends call; :func:`delete` removes a deployment's
objects.  Modules (none needs an extra at import time; ``apply`` imports ``kubernetes``,
``ecr`` imports ``boto3`` and ``base_images`` the SageMaker SDK when called):

* :mod:`~fedsage.kyma.cluster.pipeline` -- ``deploy`` / ``delete``: the steps in order
* :mod:`~fedsage.kyma.cluster.access` -- who may call the model (``FEDSAGE_KYMA_JWT_*``)
* :mod:`~fedsage.kyma.cluster.bundle` -- model and code laid out as ``/opt/ml/{model,code}``
* :mod:`~fedsage.kyma.cluster.layers` -- reproducible gzip layers
* :mod:`~fedsage.kyma.cluster.requirements_layer` -- ``requirements.txt`` as a layer
* :mod:`~fedsage.kyma.cluster.registry_client` -- the OCI Distribution API on httpx
* :mod:`~fedsage.kyma.cluster.image` -- base images, image plans, push
* :mod:`~fedsage.kyma.cluster.oci_layout` -- OCI layouts on disk (bases without a registry)
* :mod:`~fedsage.kyma.cluster.base_images` -- SageMaker's scikit-learn image, or another base
* :mod:`~fedsage.kyma.cluster.ecr` -- ECR repository and login
* :mod:`~fedsage.kyma.cluster.manifests` -- Namespace, Secret, Deployment, Service, APIRule v2
* :mod:`~fedsage.kyma.cluster.apply` -- kubeconfig, server-side apply, rollout, diagnostics

Nothing here imports :mod:`fedsage.kyma.local`.
"""

from .pipeline import delete, deploy

__all__ = ["delete", "deploy"]
