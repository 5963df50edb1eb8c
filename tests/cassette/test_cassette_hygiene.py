"""Every cassette is clean: no credential, a provenance header, used by a test; filters work."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
import vcr
import yaml
from _vcr_setup import (
    CASSETTE_ROOT,
    SECRET_FIELDS,
    SECRET_HEADERS,
    SECRET_PARAMETERS,
    scrub_text,
)
from vcr.request import Request

from lowcarb import ManualClock
from lowcarb.backends._watttime import WattTimeProvider
from lowcarb.exceptions import NoDataError

# No HTTP here: a request would meet an empty cassette folder and fail.
CASSETTES = "hygiene"
pytestmark = pytest.mark.vcr

HERE = Path(__file__).resolve().parent
CASSETTE_FILES = sorted(CASSETTE_ROOT.rglob("*.yaml")) + sorted(CASSETTE_ROOT.rglob("*.yml"))

# Text that looks like a credential, wherever it appears (bodies, URIs, comments).
LOOKS_SECRET = [
    ("JSON web token", re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")),
    ("bearer token", re.compile(r"(?i)bearer\s+(?!REDACTED\b)[A-Za-z0-9._~+/=-]{8,}")),
    ("basic auth", re.compile(r"(?i)\bbasic\s+(?!REDACTED\b)[A-Za-z0-9+/]{8,}={0,2}")),
    (
        "credential field",
        re.compile(
            r"(?i)[\"']?(token|access_token|password|api_?key|secret|securityToken|auth-token)"
            r"[\"']?\s*[:=]\s*[\"']?(?!REDACTED\b)(?!\[)[A-Za-z0-9._~+/-]{6,}"
        ),
    ),
    ("AWS key", re.compile(r"\bAKIA[0-9A-Z]{16}\b")),
    # ENTSO-E security tokens are UUIDs; one may leak bare, e.g. echoed in a body.
    (
        "UUID (an ENTSO-E token?)",
        re.compile(r"(?i)\b[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}\b"),
    ),
    ("private key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
]


def problems(text: str) -> list[str]:
    """Credential-looking findings in a cassette's text, structurally and by pattern."""
    found = [f"{name}: {m.group(0)[:40]!r}" for name, p in LOOKS_SECRET for m in p.finditer(text)]
    document = yaml.safe_load(text) or {}
    for number, interaction in enumerate(document.get("interactions", [])):
        request, response = interaction["request"], interaction["response"]
        for part, headers in (
            ("request", request.get("headers")),
            ("response", response.get("headers")),
        ):
            for name, values in (headers or {}).items():
                values = values if isinstance(values, list) else [values]
                if name.lower() in SECRET_HEADERS and any(v != "REDACTED" for v in values):
                    found.append(f"interaction {number}: {part} header {name} is not REDACTED")
        for key, value in parse_qsl(urlsplit(request["uri"]).query):
            if key.lower() in {p.lower() for p in SECRET_PARAMETERS} and value != "REDACTED":
                found.append(f"interaction {number}: query parameter {key} is not REDACTED")
    return found


def test_there_are_cassettes():
    assert len(CASSETTE_FILES) >= 10
    assert (CASSETTE_ROOT / "ukcarbon").is_dir()


@pytest.mark.parametrize("path", CASSETTE_FILES, ids=lambda p: str(p.relative_to(CASSETTE_ROOT)))
def test_no_credential_in_any_cassette(path):
    assert problems(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("path", CASSETTE_FILES, ids=lambda p: str(p.relative_to(CASSETTE_ROOT)))
def test_every_cassette_says_how_it_was_made(path):
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith(("# Written by hand (not recorded)", "# Recorded from the live API"))
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert document["version"] == 1 and document["interactions"]


def test_every_cassette_is_used_by_a_test():
    used: set[tuple[str, str]] = set()
    for module in HERE.glob("test_*.py"):
        text = module.read_text(encoding="utf-8")
        folder = re.search(r'^CASSETTES = "([^"]+)"', text, re.M)
        for name in re.findall(r'@pytest\.mark\.vcr\("([^"]+)"\)', text):
            used.add((folder.group(1) if folder else "", name))
    for path in CASSETTE_FILES:
        key = (path.parent.name, path.stem)
        assert key in used, f"{path.relative_to(CASSETTE_ROOT)} is not replayed by any test"


def test_cassette_tests_never_use_mock_transport():
    # vcrpy patches httpx.MockTransport too: the two must not meet in one test.
    for module in HERE.glob("test_*.py"):
        if module.name != Path(__file__).name:
            assert "MockTransport" not in module.read_text(encoding="utf-8"), module.name


def test_the_scanner_finds_planted_secrets():
    leaky = """# Written by hand (not recorded)
interactions:
- request:
    body: '{"password": "hunter2hunter2"}'
    headers:
      auth-token:
      - real-token-123456
    method: GET
    uri: https://web-api.tp.entsoe.eu/api?securityToken=abcdef123456&documentType=A75
  response:
    body:
      string: '{"token": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyIn0.c2lnbmF0dXJl"}'
    headers: {}
    status: {code: 200, message: OK}
version: 1
"""
    found = "\n".join(problems(leaky))
    for expected in (
        "JSON web token",
        "auth-token is not REDACTED",
        "securityToken is not REDACTED",
        "credential field: '\"password",
    ):
        assert expected in found
    clean = leaky.replace("hunter2hunter2", "REDACTED").replace("real-token-123456", "REDACTED")
    clean = clean.replace("abcdef123456", "REDACTED")
    clean = clean.replace("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyIn0.c2lnbmF0dXJl", "REDACTED")
    assert problems(clean) == []


def test_recording_filters_every_secret(vcr_config):
    config = vcr.VCR(**vcr_config).get_merged_config()
    request = Request(
        "POST",
        "https://api.example.org/v3/login?securityToken=tok-1234567&zone=DE&api_key=k-7654321",
        b'{"username": "ada", "password": "hunter2hunter2", "zone": "DE"}',
        {
            "Authorization": "Basic YWRhOmh1bnRlcjI=",
            "auth-token": "em-token-abcdef",
            "Content-Type": "application/json",
        },
    )
    kept = config["before_record_request"](request)
    text = f"{kept.uri} {kept.body!r} {kept.headers}"
    for secret in ("tok-1234567", "k-7654321", "hunter2", "ada", "YWRh", "em-token-abcdef"):
        assert secret not in text
    assert "zone=DE" in kept.uri and kept.headers["auth-token"] == "REDACTED"

    response = {
        "status": {"code": 200, "message": "OK"},
        "headers": {"Set-Cookie": ["session=abcdef123456"], "Content-Type": ["application/json"]},
        "body": {
            "string": b'{"token": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyIn0.c2ln", '
            b'"echo": "https://x/api?securityToken=tok-999999&a=1"}'
        },
    }
    kept_response = config["before_record_response"](response)
    body = kept_response["body"]["string"]
    assert b"eyJ" not in body and b"tok-999999" not in body and b'"token": "REDACTED"' in body
    assert kept_response["headers"]["Set-Cookie"] == ["REDACTED"]
    assert config["record_mode"] == "none"


def test_scrub_text_leaves_ordinary_bodies_alone():
    body = b'{"data": [{"from": "2024-06-01T12:00Z", "intensity": {"forecast": 95}}]}'
    assert scrub_text(body) == body
    assert set(SECRET_FIELDS) >= {"password", "token"}


# -- WattTime: Basic auth on /login, a JWT in its body, Bearer on every call ------------------

_WATTTIME_JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJsb3djYXJiLXVzZXIifQ.c2lnbmF0dXJlLXZhbHVl"


def test_the_scanner_finds_a_leaked_watttime_login():
    leaky = f"""# Written by hand (not recorded)
interactions:
- request:
    body: ''
    headers:
      authorization:
      - Basic bG93Y2FyYi11c2VyOmh1bnRlcjJodW50ZXIy
    method: GET
    uri: https://api.watttime.org/login
  response:
    body:
      string: '{{"token": "{_WATTTIME_JWT}"}}'
    headers: {{}}
    status: {{code: 200, message: OK}}
- request:
    body: ''
    headers:
      Authorization:
      - Bearer {_WATTTIME_JWT}
    method: GET
    uri: https://api.watttime.org/v3/forecast?region=CAISO_NORTH&signal_type=co2_moer
  response:
    body:
      string: '{{}}'
    headers: {{}}
    status: {{code: 200, message: OK}}
version: 1
"""
    found = "\n".join(problems(leaky))
    for expected in (
        "JSON web token",
        "basic auth",
        "bearer token",
        "interaction 0: request header authorization is not REDACTED",
        "interaction 1: request header Authorization is not REDACTED",
    ):
        assert expected in found


def test_recording_a_watttime_session_writes_no_credential(vcr_config, tmp_path):
    """Record a login and a forecast through the real filters; the file must be clean."""

    def live(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/login":
            return httpx.Response(200, json={"token": _WATTTIME_JWT})
        assert request.headers["authorization"] == f"Bearer {_WATTTIME_JWT}"
        body = {
            "data": [{"point_time": "2024-06-01T12:10:00+00:00", "value": 1000.0}],
            "meta": {"region": "CAISO_NORTH", "units": "lbs_co2_per_mwh", "echo": _WATTTIME_JWT},
        }
        return httpx.Response(200, json=body)

    recorder = vcr.VCR(**{**vcr_config, "record_mode": "all"})
    path = tmp_path / "session.yaml"
    with recorder.use_cassette(str(path)):
        provider = WattTimeProvider(
            username="lowcarb-user",
            password="hunter2hunter2",
            regions=["US-CAL-CISO=CAISO_NORTH"],
            transport=httpx.MockTransport(live),
            clock=ManualClock(datetime(2024, 6, 1, 12, 10, tzinfo=UTC)),
        )
        provider.latest(["US-CAL-CISO"])
    text = path.read_text(encoding="utf-8")
    assert "/login" in text and "/v3/forecast" in text
    assert problems(text) == []
    for secret in (_WATTTIME_JWT, "hunter2", "bG93Y2FyYi11c2Vy"):
        assert secret not in text


# -- ENTSO-E: the token is the query parameter securityToken (a UUID) -------------------------

_ENTSOE_TOKEN = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"


def test_the_scanner_finds_a_leaked_entsoe_token():
    leaky = f"""# Written by hand (not recorded)
interactions:
- request:
    body: null
    headers: {{}}
    method: GET
    uri: https://web-api.tp.entsoe.eu/api?documentType=A75&securityToken={_ENTSOE_TOKEN}
  response:
    body:
      string: '<text>token {_ENTSOE_TOKEN.upper()} is not valid</text>'
    headers: {{}}
    status: {{code: 401, message: Unauthorized}}
version: 1
"""
    found = "\n".join(problems(leaky))
    assert "interaction 0: query parameter securityToken is not REDACTED" in found
    assert found.count("UUID (an ENTSO-E token?)") == 2  # the URI and the bare one in the body


def test_recording_an_entsoe_session_writes_no_token(vcr_config, tmp_path):
    """Record entsoe-py's requests against a loopback server through the real filters."""
    import threading
    from html import escape
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from lowcarb.backends._entsoe import EntsoeProvider

    class Echo(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # an acknowledgement that echoes the URL, as some do
            body = (
                '<?xml version="1.0" encoding="UTF-8"?><Acknowledgement_MarketDocument>'
                f"<Reason><code>999</code><text>No matching data found for {escape(self.path)}</text>"
                "</Reason></Acknowledgement_MarketDocument>"
            ).encode()
            self.send_response(200)
            self.send_header("content-type", "text/xml")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    recorder = vcr.VCR(**{**vcr_config, "record_mode": "all"})
    path = tmp_path / "entsoe.yaml"
    try:
        with recorder.use_cassette(str(path)):
            provider = EntsoeProvider(
                token=_ENTSOE_TOKEN,
                base_url=f"http://127.0.0.1:{server.server_port}/api",
                clock=ManualClock(datetime(2024, 6, 1, 12, 10, tzinfo=UTC)),
            )
            with pytest.raises(NoDataError):
                provider.latest(["DE"])
            provider.close()
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    text = path.read_text(encoding="utf-8")
    assert "documentType=A75" in text and "securityToken=REDACTED" in text
    assert _ENTSOE_TOKEN not in text and problems(text) == []
