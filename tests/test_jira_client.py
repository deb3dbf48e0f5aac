"""The Jira client on its own (connectors/jira/client.py): our session under the `jira` library, detection, site facts.

The library takes no session, so client.library_on_session replaces the one it builds; the
first tests fail when the library changes in a way that breaks that seam or makes it unneeded.
"""

from __future__ import annotations

import base64
import inspect
from typing import Any

import pytest
from jira import JIRA
from jira.resilientsession import ResilientSession

from itsm_exporter.connectors.base import SchemaError
from itsm_exporter.connectors.http import build_session
from itsm_exporter.connectors.jira.client import HEADERS, JiraClient, library_on_session
from itsm_exporter.connectors.jira.config import JiraSource
from tests.fakes.jira import EMAIL, TOKEN, FakeJira, Fault, Mode, fake_jira
from tests.test_jira import MODES, Waits, source_settings

pytestmark = pytest.mark.integration  # starts fake upstreams, servers or subprocesses on loopback


def client(fake: FakeJira, mode: Mode, codes: list[str] | None = None, **extra: Any) -> JiraClient:
    source = JiraSource.model_validate(source_settings(fake.url, mode, **extra))
    observe = codes.append if codes is not None else lambda _code: None
    return JiraClient(source, observe, sleep=Waits(), jitter=lambda: 0.5)


def test_the_library_still_takes_no_session_of_its_own() -> None:
    # When this fails, the library has a public way to be given a session: pass ours through it and
    # drop the replacement in client.library_on_session.
    assert "session" not in inspect.signature(JIRA.__init__).parameters


def test_a_library_on_our_session_sends_nothing_while_it_is_built_then_everything_through_it() -> None:
    with fake_jira("cloud") as fake:
        source = JiraSource.model_validate(source_settings(fake.url, "cloud"))
        codes: list[str] = []
        session = build_session(source, codes.append)
        session.auth = (EMAIL, TOKEN)
        library = library_on_session(session, fake.url, "3")
        try:
            assert fake.requests == []
            library.server_info()
            library.myself()
            library.fields()
        finally:
            library.close()
    # Through the library's own session these would be counted nowhere and sent without credentials.
    assert codes == ["200", "200", "200"]
    assert [r.path for r in fake.requests] == ["/rest/api/3/serverInfo", "/rest/api/3/myself", "/rest/api/3/field"]


def test_our_session_sends_the_headers_the_library_s_own_session_would() -> None:
    library_headers = JIRA.DEFAULT_OPTIONS["headers"]
    assert isinstance(library_headers, dict)
    assert {**library_headers, "Accept": ResilientSession().headers["Accept"]} == HEADERS


@pytest.mark.parametrize("mode", MODES)
def test_every_request_carries_the_source_s_credentials_and_is_counted(mode: Mode) -> None:
    codes: list[str] = []
    with fake_jira(mode) as fake:
        jira = client(fake, mode, codes)
        try:
            site = jira.site()
            jira.call("changelog", lambda: jira.get("/rest/api/2/issue/HELP-1", {"expand": "changelog"}))
        finally:
            jira.close()
    expected = (
        "Basic " + base64.b64encode(f"{EMAIL}:{TOKEN}".encode()).decode() if mode == "cloud" else f"Bearer {TOKEN}"
    )
    assert {r.headers["authorization"] for r in fake.requests} == {expected}
    assert codes == ["200"] * len(fake.requests)
    assert all(r.headers[name.lower()] == value for r in fake.requests for name, value in HEADERS.items())
    assert site.zone is not None and site.fields and site.statuses


@pytest.mark.parametrize(
    ("mode", "deployment", "cloud", "server_info"),
    [
        ("cloud", "auto", True, ["/rest/api/2/serverInfo", "/rest/api/3/serverInfo"]),
        ("datacenter", "auto", False, ["/rest/api/2/serverInfo"]),
        ("cloud", "cloud", True, ["/rest/api/3/serverInfo"]),
        ("datacenter", "datacenter", False, ["/rest/api/2/serverInfo"]),
    ],
)
def test_the_deployment_is_detected_or_taken_from_the_config(
    mode: Mode, deployment: str, cloud: bool, server_info: list[str]
) -> None:
    with fake_jira(mode) as fake:
        jira = client(fake, mode, deployment=deployment)
        try:
            library = jira.library()
            assert jira.library() is library
        finally:
            jira.close()
    assert jira.cloud is cloud
    assert library.deploymentType == ("Cloud" if cloud else "Server")
    assert [r.path for r in fake.requests] == server_info


def test_a_server_info_that_is_not_jira_s_is_a_schema_error() -> None:
    with fake_jira("datacenter") as fake:
        fake.faults.append(Fault(200, {"status": "ok"}, "/serverInfo"))
        jira = client(fake, "datacenter")
        with pytest.raises(SchemaError) as raised:
            jira.library()
        jira.close()
    assert str(raised.value) == (
        f"source jsm: serverInfo at {fake.url} did not answer in Jira's shape: missing 'versionNumbers'"
    )
