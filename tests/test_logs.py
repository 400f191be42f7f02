"""Nothing secret in gunicorn's log lines: keys in query strings, malformed request lines.

Runs the Procfile command and reads its whole log (access and error lines) after
requests that carry keys where clients put them.
"""
from __future__ import annotations

import http.client
import socket
import time

import pytest

from tests.test_e2e import API_KEY, Gateway

pytestmark = pytest.mark.e2e

SECRETS = ("QUERY-KEY-1f2e", "QUERY-KEY-3d4c", "QUERY-TOKEN-5b6a", "LINE-KEY-7980")


@pytest.fixture(scope="module")
def logged(sandbox_server, tmp_path_factory):
    gw = Gateway(sandbox_server, tmp_path_factory.mktemp("logs") / "gunicorn.log")
    try:
        for path in (f"/v1/models?api-key={SECRETS[0]}", f"/v1/models?key={SECRETS[1]}&x=1",
                     f"/v1/models?access_token={SECRETS[2]}"):
            connection = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
            connection.request("GET", path, headers={"Authorization": f"Bearer {API_KEY}"})
            assert connection.getresponse().status == 200
            connection.close()
        with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as raw:
            # A request line gunicorn refuses, with a key in it: gunicorn logs such lines.
            raw.sendall(f"GET /v1/models?api-key={SECRETS[3]}\r\nHost: x\r\n\r\n".encode())
            raw.recv(65536)
        time.sleep(0.5)  # the access log is written after the response
    finally:
        gw.stop()
    return gw.log()


def test_no_key_from_a_query_string_or_a_request_line_reaches_the_log(logged):
    assert [s for s in SECRETS if s in logged] == []
    assert API_KEY not in logged


def test_the_access_log_keeps_method_path_and_status(logged):
    assert '"GET /v1/models HTTP/1.1" 200' in logged


def test_gunicorn_still_says_what_was_wrong_with_the_request_line(logged):
    assert "Invalid HTTP request line: 'GET /v1/models?api-key=***'" in logged
