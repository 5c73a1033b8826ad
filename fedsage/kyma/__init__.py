"""Kyma deployments: a trained model served on SAP BTP Kyma, or by local replicas.

Two targets, each a subpackage with one entry function the backends call:

* :mod:`fedsage.kyma.cluster` -- ``cluster.deploy(...)``: image built and pushed to ECR
  without Docker, manifests applied to the cluster of a kubeconfig (aws mode);
* :mod:`fedsage.kyma.local` -- ``local.deploy(...)``: replicas behind a gateway on
  127.0.0.1 (local mode; no extra needed).

And the small core both share (it imports neither target at module level):

* :mod:`~fedsage.kyma.names` -- ``validate_name`` / ``derive_name``
* :mod:`~fedsage.kyma.records` -- ``KymaDeployment`` records in fedsage's registry
* :mod:`~fedsage.kyma.invoke` -- ``invoke_kyma_endpoint``
* :mod:`~fedsage.kyma._hosts` -- which hosts are loopback

The cluster and the local target never import each other.
"""
