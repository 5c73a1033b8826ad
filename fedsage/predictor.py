"""``Predictor``: what ``handle.deploy()`` returns, like the SageMaker SDK's ``SKLearnPredictor``.

It sends ``predict(data)`` through the serializer (default: ``.npy``, as the SDK's
``SKLearnPredictor``) and reads the answer through the deserializer (default: ``.npy``
back to a NumPy array).  The SDK's own serializer and deserializer objects
(``sagemaker.serializers.CSVSerializer()``, ...) work too: anything with
``serialize(data)`` and ``CONTENT_TYPE``, or ``deserialize(stream, content_type)`` and
``ACCEPT``.
"""

from __future__ import annotations

import codecs
import io
import json
from typing import Any, Protocol

import numpy as np

__all__ = ["NumpyDeserializer", "NumpySerializer", "Predictor"]

NPY = "application/x-npy"


class EndpointControl(Protocol):
    """What a predictor asks of the backend that runs its endpoint."""

    mode: str

    def invoke_endpoint(
        self, endpoint_name: str, body: bytes, content_type: str, accept: str
    ) -> tuple[bytes, str]: ...

    def delete_endpoint(self, endpoint_name: str) -> None: ...

    def describe_endpoint(self, name: str) -> dict[str, Any]: ...


class NumpySerializer:
    """Data to ``.npy`` bytes, as the SDK's ``NumpySerializer`` does.

    NumPy arrays and lists are saved with :func:`numpy.save`; a file-like object is
    sent as it is (it is assumed to hold ``.npy`` data); anything else (a DataFrame, a
    tuple) goes through :func:`numpy.array` first.
    """

    def __init__(self, dtype: Any = None, content_type: str = NPY) -> None:
        self.dtype = dtype
        self.CONTENT_TYPE = content_type

    def serialize(self, data: Any) -> bytes:
        empty = isinstance(data, np.ndarray) and data.size == 0
        if empty or (isinstance(data, list) and not data):
            raise ValueError("Cannot serialize empty array.")
        if hasattr(data, "read"):
            raw = data.read()
            return raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
        array = data if isinstance(data, np.ndarray) else np.array(data, self.dtype)
        buffer = io.BytesIO()
        np.save(buffer, array)
        return buffer.getvalue()


class NumpyDeserializer:
    """An answer (``.npy``, CSV or JSON) to a NumPy array, as the SDK's ``NumpyDeserializer``."""

    def __init__(self, dtype: Any = None, accept: str = NPY, allow_pickle: bool = False) -> None:
        self.dtype = dtype
        self.ACCEPT = accept
        self.allow_pickle = allow_pickle

    def deserialize(self, stream: Any, content_type: str) -> Any:
        media = content_type.split(";", 1)[0].strip()
        if media == "text/csv":
            return np.genfromtxt(codecs.getreader("utf-8")(stream), delimiter=",", dtype=self.dtype)
        if media == "application/json":
            return np.array(json.load(codecs.getreader("utf-8")(stream)), dtype=self.dtype)
        if media in (NPY, "application/x-npz"):
            return np.load(io.BytesIO(stream.read()), allow_pickle=self.allow_pickle)
        raise ValueError(f"NumpyDeserializer cannot read content type {content_type}")


def _content_type(serializer: Any) -> str:
    return str(getattr(serializer, "CONTENT_TYPE", None) or serializer.content_type)


def _accept(deserializer: Any) -> str:
    accept = getattr(deserializer, "ACCEPT", None) or deserializer.accept
    return ", ".join(accept) if isinstance(accept, (tuple, list)) else str(accept)


class Predictor:
    """A deployed endpoint, called the way the SDK's ``SKLearnPredictor`` is.

    Parameters
    ----------
    endpoint_name : str
        The endpoint.
    backend : object
        The backend that runs it (local or aws).
    serializer, deserializer : object, optional
        Default :class:`NumpySerializer` and :class:`NumpyDeserializer`, as the SDK's
        scikit-learn predictor.
    """

    def __init__(
        self,
        endpoint_name: str,
        backend: EndpointControl,
        serializer: Any = None,
        deserializer: Any = None,
    ) -> None:
        self.endpoint_name = endpoint_name
        self._backend = backend
        self.serializer = serializer if serializer is not None else NumpySerializer()
        self.deserializer = deserializer if deserializer is not None else NumpyDeserializer()

    def __repr__(self) -> str:
        return f"Predictor(endpoint_name={self.endpoint_name!r}, mode={self._backend.mode!r})"

    def _repr_html_(self) -> str:
        from ._html import summary_table

        status = self._backend.describe_endpoint(self.endpoint_name).get("EndpointStatus", "")
        return summary_table(
            "Predictor",
            [
                ("endpoint", self.endpoint_name),
                ("status", status),
                ("mode", self._backend.mode),
                ("sends", self.content_type),
                ("accepts", self.accept),
            ],
        )

    @property
    def content_type(self) -> str:
        """The MIME type the serializer produces."""
        return _content_type(self.serializer)

    @property
    def accept(self) -> str:
        """The MIME type(s) the deserializer reads."""
        return _accept(self.deserializer)

    def predict(self, data: Any, initial_args: dict[str, Any] | None = None) -> Any:
        """Serialize ``data``, invoke the endpoint, deserialize the answer.

        Parameters
        ----------
        data : array-like, DataFrame, list, str, bytes or file-like
            The request, as the serializer takes it.
        initial_args : dict, optional
            ``ContentType`` / ``Accept`` overrides, as in the SDK.

        Raises
        ------
        InvocationError
            When the model answers with an error status.
        """
        args = dict(initial_args or {})
        content_type = str(args.get("ContentType") or self.content_type)
        accept = str(args.get("Accept") or self.accept)
        body = self.serializer.serialize(data)
        if isinstance(body, str):
            body = body.encode("utf-8")
        elif hasattr(body, "read"):
            body = body.read()
        answer, answer_type = self._backend.invoke_endpoint(
            self.endpoint_name, bytes(body), content_type, accept
        )
        return self.deserializer.deserialize(io.BytesIO(answer), answer_type or accept)

    def delete_endpoint(self, delete_endpoint_config: bool = True) -> None:
        """Delete the endpoint (and, in aws mode, its configuration)."""
        self._backend.delete_endpoint(self.endpoint_name)

    def delete_model(self) -> None:
        """Nothing to do: fedsage deletes an endpoint's model with the endpoint."""
