"""The local Kyma target: replicas of the model behind one gateway URL on 127.0.0.1.

:func:`deploy` is the entry the backends call; :func:`delete` and :func:`describe`
serve ``fedsage kyma delete | describe``.  Modules:

* :mod:`~fedsage.kyma.local.deployment` -- deploy, delete, describe
* :mod:`~fedsage.kyma.local.replica` -- one replica = one local endpoint of ``fedsage.serving``
* :mod:`~fedsage.kyma.local.settings` -- ``GatewayConfig`` (``gateway.json``)
* :mod:`~fedsage.kyma.local.gateway` -- the gateway process (proxy, health, restarts)
* :mod:`~fedsage.kyma.local._http` -- the gateway's server-side HTTP/1.1 framing

Nothing here imports :mod:`fedsage.kyma.cluster` or an optional extra.
"""

from .deployment import delete, deploy, describe

__all__ = ["delete", "deploy", "describe"]
