"""ServiceNow error mapping, retries and OAuth, driven through pysnow against the fake instance."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from itsm_exporter.config import parse_config
from itsm_exporter.connectors.base import (
    AccessDenied,
    AuthError,
    BadRequest,
    RateLimited,
    SchemaError,
    UpstreamUnavailable,
)
from itsm_exporter.connectors.servicenow.config import ServiceNowSource
from itsm_exporter.connectors.servicenow.connector import ServiceNowConnector
from itsm_exporter.records import Batch
from tests.fakes.servicenow import FakeServiceNow, Reply, source_settings, status
from tests.plans import run_plan

pytestmark = pytest.mark.integration  # starts fake upstreams, servers or subprocesses on loopback

WRONG = "Wr0ng-Secret!"


class Recorder:
    """Collects injected waits and observed request codes."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []
        self.codes: list[str] = []
        self.now = 1000.0


def connector(fake: FakeServiceNow, recorder: Recorder, **settings: Any) -> ServiceNowConnector:
    config = parse_config({"sources": [source_settings(fake, **settings)]}, check_files=False)
    source = config.sources[0]
    assert isinstance(source, ServiceNowSource)
    return ServiceNowConnector(
        source,
        recorder.codes.append,
        sleep=recorder.sleeps.append,
        jitter=lambda: 0.5,  # 0.7 + 0.6 x 0.5 = a factor of exactly 1
        clock=lambda: recorder.now,
    )


def fetch(fake: FakeServiceNow, recorder: Recorder, **settings: Any) -> list[Batch]:
    sn = connector(fake, recorder, surveys_enabled=False, **settings)
    try:
        return run_plan(sn)
    finally:
        sn.close()


@pytest.fixture
def fake() -> Iterator[FakeServiceNow]:
    with FakeServiceNow() as instance:
        instance.add(
            "incident", number="INC1", state="1", opened_at="2026-03-01 08:00:00", sys_updated_on="2026-03-01 09:00:00"
        )
        yield instance


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def test_401_names_the_instance_and_user_but_never_the_password(fake: FakeServiceNow, recorder: Recorder) -> None:
    with pytest.raises(AuthError) as caught:
        fetch(fake, recorder, password=WRONG)
    message = str(caught.value)
    assert message == (
        f"source sn: table incident at {fake.url}: HTTP 401, user itsm-exporter was refused: "
        "User Not Authenticated (Required to provide Auth information)"
    )
    assert WRONG not in message and WRONG not in repr(caught.value.__cause__)
    assert recorder.sleeps == [] and recorder.codes == ["401"]


def test_403_on_a_table_is_an_auth_error_naming_it(fake: FakeServiceNow, recorder: Recorder) -> None:
    fake.denied.add("task_sla")
    with pytest.raises(AccessDenied, match=r"table task_sla at .*: HTTP 403, user itsm-exporter may not read it: "):
        fetch(fake, recorder, sla_source="task_sla")


def test_400_is_a_bad_request_with_servicenows_message(fake: FakeServiceNow, recorder: Recorder) -> None:
    with pytest.raises(BadRequest) as caught:
        fetch(fake, recorder, table="incidnt")
    assert (
        str(caught.value)
        == f"source sn: table incidnt at {fake.url}: HTTP 400, the request was rejected: Invalid table incidnt"
    )


def test_429_waits_for_retry_after_then_succeeds(fake: FakeServiceNow, recorder: Recorder) -> None:
    fake.fail("incident", status(429, headers={"Retry-After": "7"}), status(429, headers={"Retry-After": "3"}))
    (batch,) = fetch(fake, recorder)
    assert [t.key for t in batch.tickets] == ["INC1"]
    assert recorder.sleeps == [7.0, 3.0]
    assert recorder.codes == ["429", "429", "200"]


def test_429_beyond_max_retries_is_rate_limited(fake: FakeServiceNow, recorder: Recorder) -> None:
    fake.fail("incident", *[status(429, headers={"Retry-After": "5"})] * 3)
    with pytest.raises(RateLimited) as caught:
        fetch(fake, recorder, max_retries=2)
    assert caught.value.retry_after == 5.0
    assert recorder.sleeps == [5.0, 5.0]
    assert str(caught.value) == f"source sn: table incident at {fake.url}: HTTP 429, still rate-limited after 2 retries"


def test_5xx_bursts_back_off_exponentially_then_succeed(fake: FakeServiceNow, recorder: Recorder) -> None:
    fake.fail("incident", status(503), status(500), status(503))
    (batch,) = fetch(fake, recorder)
    assert len(batch.tickets) == 1
    assert recorder.sleeps == [1.0, 2.0, 4.0]


def test_persistent_5xx_is_upstream_unavailable(fake: FakeServiceNow, recorder: Recorder) -> None:
    fake.fail("incident", status(500), status(500))
    with pytest.raises(UpstreamUnavailable) as caught:
        fetch(fake, recorder, max_retries=1)
    assert str(caught.value) == (
        f"source sn: table incident at {fake.url}: HTTP 500 Internal Server Error after 1 retry: Internal server error"
    )
    assert recorder.sleeps == [1.0]


def test_a_dropped_connection_is_retried(fake: FakeServiceNow, recorder: Recorder) -> None:
    fake.fail("incident", Reply("drop"))
    (batch,) = fetch(fake, recorder)
    assert len(batch.tickets) == 1
    assert recorder.sleeps == [1.0]
    assert recorder.codes == ["error", "200"]


def test_an_unreachable_instance_is_upstream_unavailable(recorder: Recorder) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = parse_config(
        {
            "sources": [
                {
                    "name": "sn",
                    "kind": "servicenow",
                    "url": f"http://127.0.0.1:{port}",
                    "username": "u",
                    "password": "p",
                    "max_retries": 2,
                }
            ]
        },
        check_files=False,
    )
    source = config.sources[0]
    assert isinstance(source, ServiceNowSource)
    sn = ServiceNowConnector(source, sleep=recorder.sleeps.append, jitter=lambda: 0.5)
    with pytest.raises(UpstreamUnavailable) as caught:
        run_plan(sn)
    assert str(caught.value) == (
        f"source sn: table incident at http://127.0.0.1:{port}: connection refused by 127.0.0.1:{port} after 2 "
        "retries: check the source's url (host and port), and that the instance is up and reachable from here"
    )
    assert recorder.sleeps == [1.0, 2.0]


def test_a_hibernating_instance_is_upstream_unavailable_at_once(fake: FakeServiceNow, recorder: Recorder) -> None:
    fake.fail("incident", Reply("html"))
    with pytest.raises(UpstreamUnavailable) as caught:
        fetch(fake, recorder)
    assert str(caught.value) == (
        f"source sn: table incident at {fake.url}: answered with an HTML page, not JSON (hibernating, in "
        "maintenance, or a login page?)"
    )
    assert recorder.sleeps == []


def test_truncated_json_is_retried_then_a_schema_error(fake: FakeServiceNow, recorder: Recorder) -> None:
    fake.fail("incident", Reply("truncate"), Reply("truncate"))
    (batch,) = fetch(fake, recorder, max_retries=2)  # cut short twice, read whole the third time
    assert len(batch.tickets) == 1
    assert recorder.sleeps == [1.0, 2.0]
    fake.fail("incident", Reply("truncate"), Reply("truncate"))
    with pytest.raises(SchemaError) as caught:
        fetch(fake, recorder, max_retries=1)
    assert str(caught.value) == (f"source sn: table incident at {fake.url}: the answer is not valid JSON after 1 retry")
    assert recorder.sleeps == [1.0, 2.0, 1.0]


# ----- OAuth -----


@pytest.fixture
def oauth_fake() -> Iterator[FakeServiceNow]:
    with FakeServiceNow(client_id="exporter-app", client_secret="Cl1ent-Secret") as instance:
        instance.add(
            "incident", number="INC1", state="1", opened_at="2026-03-01 08:00:00", sys_updated_on="2026-03-01 09:00:00"
        )
        yield instance


def grants(fake: FakeServiceNow) -> list[str]:
    return [r.form.get("grant_type", "?") for r in fake.requests if r.path == "/oauth_token.do"]


def test_oauth_password_grant_is_form_encoded_and_tokens_are_bearer(
    oauth_fake: FakeServiceNow, recorder: Recorder
) -> None:
    (batch,) = fetch(oauth_fake, recorder)
    assert len(batch.tickets) == 1
    token_request, table_request = oauth_fake.requests
    assert token_request.method == "POST"
    assert token_request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert token_request.form == {
        "client_id": "exporter-app",
        "client_secret": "Cl1ent-Secret",
        "grant_type": "password",
        "username": "itsm-exporter",
        "password": "Sn0w-pass!",
    }
    assert table_request.headers["Authorization"].startswith("Bearer ")
    assert table_request.headers["Authorization"][7:] in oauth_fake.access_tokens


def test_oauth_refreshes_before_expiry_and_after_a_401(oauth_fake: FakeServiceNow, recorder: Recorder) -> None:
    sn = connector(oauth_fake, recorder, surveys_enabled=False)
    try:
        assert len(run_plan(sn)) == 1
        recorder.now += 1800 - 59  # inside the renewal margin of a 1800 s token
        assert len(run_plan(sn)) == 1
        assert grants(oauth_fake) == ["password", "refresh_token"]
        oauth_fake.revoke_tokens()
        assert len(run_plan(sn)) == 1
        assert grants(oauth_fake) == ["password", "refresh_token", "refresh_token"]
        oauth_fake.revoke_tokens()
        oauth_fake.refresh_tokens.clear()
        assert len(run_plan(sn)) == 1
        assert grants(oauth_fake) == ["password", "refresh_token", "refresh_token", "refresh_token", "password"]
    finally:
        sn.close()
    assert recorder.codes.count("401") == 3  # one per revocation, one for the rejected refresh token


def test_a_refused_oauth_grant_names_client_and_user_but_no_secret(recorder: Recorder) -> None:
    with (
        FakeServiceNow(client_id="exporter-app", client_secret="Cl1ent-Secret") as fake,
        pytest.raises(AuthError) as caught,
    ):
        fetch(fake, recorder, client_secret=WRONG)
    assert str(caught.value) == (
        f"source sn: the OAuth token at {fake.url}: HTTP 401, the OAuth password grant for user itsm-exporter "
        "and client exporter-app was refused: access_denied"
    )
    assert WRONG not in str(caught.value)
