"""``invoke_kyma_endpoint`` and ``FEDSAGE_KYMA_TOKEN``: the token never crosses plain http.

A URL that must not be contacted cannot be tested against a real server; the calls go
through an httpx ``MockTransport`` that records what would have been sent (nothing
leaves the process).
"""

from __future__ import annotations

import httpx
import pytest

from fedsage.errors import ConfigurationError
from fedsage.kyma import invoke

TOKEN = "eyJ-secret-token-value"


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[httpx.Request]:
    """Requests invoke_kyma_endpoint sends, recorded instead of sent."""
    requests: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200, json=[1])

    client = httpx.Client(transport=httpx.MockTransport(record))
    monkeypatch.setattr(invoke._local, "client", client, raising=False)
    monkeypatch.setenv(invoke.TOKEN_ENV, TOKEN)
    yield requests
    client.close()


@pytest.mark.parametrize(
    "url",
    [
        "http://churn.c123abc.kyma.ondemand.com",
        "http://churn.example/invocations",
        "http://user:pw@10.0.0.5:8080/invocations",
        "http://127.0.0.1.attacker.example/invocations",
        "http://localhost.attacker.example",
    ],
)
def test_token_is_not_sent_over_plain_http(sent, url):
    with pytest.raises(ConfigurationError) as caught:
        invoke.invoke_kyma_endpoint(url, "text/csv", payload="1,2")
    message = str(caught.value)
    assert invoke.TOKEN_ENV in message and "https" in message
    assert TOKEN not in message and "pw" not in message
    assert url.split("@")[-1].split("://")[-1].split("/")[0] in message  # names the host
    assert sent == []  # nothing left


@pytest.mark.parametrize(
    "url",
    [
        "https://churn.c123abc.kyma.ondemand.com",
        "http://127.0.0.1:8080",
        "http://localhost:8080/invocations",
        "http://[::1]:8080",
    ],
)
def test_token_goes_to_https_and_loopback(sent, url):
    answer = invoke.invoke_kyma_endpoint(url, "text/csv", payload="1,2")
    assert answer.status_code == 200
    (request,) = sent
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"


def test_an_explicit_authorization_header_is_the_callers_choice(sent):
    headers = {"Authorization": "Bearer chosen"}
    invoke.invoke_kyma_endpoint("http://churn.example", "text/csv", payload="1", headers=headers)
    (request,) = sent
    assert request.headers["Authorization"] == "Bearer chosen"
