"""The Zendesk source's configuration: good and bad blocks, each bad one with its exact message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from itsm_exporter.cli import main
from itsm_exporter.config import load_config
from itsm_exporter.connectors.zendesk.config import ZendeskSource


def zendesk(**overrides: Any) -> dict[str, Any]:
    source: dict[str, Any] = {
        "name": "zd",
        "kind": "zendesk",
        "url": "https://acme.zendesk.com",
        "email": "bot@acme.com",
        "token": "zd-token-distinctive",
    }
    source.update(overrides)
    return {k: v for k, v in source.items() if v is not None}


def problems(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        ZendeskSource.model_validate(raw)
    return [f"{'.'.join(map(str, e['loc']))}: {e['msg']}".lstrip(": ") for e in caught.value.errors()]


def test_defaults() -> None:
    source = ZendeskSource.model_validate(zendesk())
    assert source.service_field == "brand"
    assert source.sla_metrics == {
        "response": ["first_reply_time"],
        "resolution": ["total_resolution_time", "requester_wait_time", "agent_work_time"],
    }
    assert (source.page_size, source.export_requests_per_minute, source.satisfaction) == (1000, 10, True)
    assert "zd-token-distinctive" not in repr(source)


def test_oauth_needs_no_email() -> None:
    source = ZendeskSource.model_validate(zendesk(email=None, token=None, oauth_token="bearer-distinctive"))
    assert source.oauth_token is not None and source.oauth_token.get_secret_value() == "bearer-distinctive"


BAD = [
    ("no secret", zendesk(token=None), "Value error, token, token_file, oauth_token or oauth_token_file is required"),
    ("two secrets", zendesk(oauth_token="x"), "Value error, set only one of token, oauth_token"),
    ("token without email", zendesk(email=None), "Value error, an API token needs the email of its agent (email)"),
    (
        "oauth with email",
        zendesk(token=None, oauth_token="x"),
        "Value error, email is for an API token: an OAuth token names its user itself",
    ),
    (
        "service field",
        zendesk(service_field="organization"),
        "service_field: Value error, service_field is brand, none, or the numeric id of a custom ticket field",
    ),
    (
        "complaint field",
        zendesk(complaints={"subject": ["angry"]}),
        "complaints: Value error, complaints field 'subject' is not tags, type or the numeric id of a custom ticket "
        "field",
    ),
    (
        "sla metric",
        zendesk(sla_metrics={"response": ["reply_time"]}),
        "sla_metrics.response.0: Input should be 'first_reply_time', 'next_reply_time', 'periodic_update_time', "
        "'pausable_update_time', 'requester_wait_time', 'agent_work_time' or 'total_resolution_time'",
    ),
    (
        "empty sla metrics",
        zendesk(sla_metrics={"resolution": []}),
        "sla_metrics: Value error, sla_metrics.resolution names no metric",
    ),
    ("page size", zendesk(page_size=5000), "page_size: Input should be less than or equal to 1000"),
]


@pytest.mark.parametrize(("case", "raw", "message"), BAD, ids=[c[0] for c in BAD])
def test_bad_blocks_name_their_problem(case: str, raw: dict[str, Any], message: str) -> None:
    assert problems(raw) == [message]


# -- the files `check-config` reads ------------------------------------------------------------------

GOOD_FILE = """\
sources:
  - name: zendesk
    kind: zendesk
    url: https://acme.zendesk.com
    email: bot@acme.com
    token_file: {secret}
    service_field: "360001"
    priority_map: {{urgent: p1, low: p5}}
    complaints: {{tags: [complaint], 360077: [formal_complaint]}}
    sla_metrics: {{resolution: [agent_work_time]}}
"""
BAD_FILES = {
    "no secret": (
        "sources:\n  - {name: zd, kind: zendesk, url: 'https://acme.zendesk.com', email: bot@acme.com}\n",
        "sources[0]: token, token_file, oauth_token or oauth_token_file is required",
    ),
    "unreadable token file": (
        "sources:\n  - {name: zd, kind: zendesk, url: 'https://acme.zendesk.com', email: a@b.c, "
        "token_file: /nonexistent/zd-token}\n",
        "sources[0].token_file: /nonexistent/zd-token is not a readable file",
    ),
    "unreadable oauth file": (
        "sources:\n  - {name: zd, kind: zendesk, url: 'https://acme.zendesk.com', "
        "oauth_token_file: /nonexistent/zd-oauth}\n",
        "sources[0].oauth_token_file: /nonexistent/zd-oauth is not a readable file",
    ),
    "unknown key": (
        "sources:\n  - {name: zd, kind: zendesk, url: 'https://acme.zendesk.com', oauth_token: x, subdomain: acme}\n",
        "sources[0].subdomain: unknown key",
    ),
    "bad url": (
        "sources:\n  - {name: zd, kind: zendesk, url: acme.zendesk.com, oauth_token: x}\n",
        "sources[0].url: not an http:// or https:// URL such as https://acme.zendesk.com",
    ),
    "bad priority": (
        "sources:\n  - {name: zd, kind: zendesk, url: 'https://a.zendesk.com', oauth_token: x, "
        "priority_map: {urgent: p0}}\n",
        "sources[0].priority_map.urgent: Input should be 'p1', 'p2', 'p3', 'p4' or 'p5'",
    ),
}


def test_a_good_file_passes_check_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secret = tmp_path / "zd-token"
    secret.write_text("zd-token-distinctive\n")
    path = tmp_path / "config.yaml"
    path.write_text(GOOD_FILE.format(secret=secret), encoding="utf-8")
    assert main(["check-config", "--config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "zd-token-distinctive" not in out + err
    source = load_config(path).sources[0]
    assert isinstance(source, ZendeskSource)
    assert source.complaints == {"tags": ["complaint"], "360077": ["formal_complaint"]}
    assert source.sla_metrics == {"resolution": ["agent_work_time"]}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_file_names_its_problem(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text, expected = BAD_FILES[case]
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    assert main(["check-config", "--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [f"{path}: invalid configuration", f"  {expected}"]


def test_segments_read_the_organization_the_brand_or_a_custom_field() -> None:
    """A custom field's id may be written bare in YAML (a number there); any other field is refused, unquoted."""
    source = ZendeskSource.model_validate(
        zendesk(segments={"customer": "organization", "line": "brand", "tier": 360088})
    )
    assert source.segments == {"customer": "organization", "line": "brand", "tier": "360088"}
    assert problems(zendesk(segments={"team": "requester-secret-xyz"})) == [
        "segments: Value error, segment team: its field is not organization, brand or the numeric id of a custom "
        "ticket field"
    ]
