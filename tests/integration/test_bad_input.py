"""Bad input gets a clear uforgeError and changes nothing."""

import pytest
from helpers import valid_xml, xml_value

XML = {"Accept": "application/xml", "Content-Type": "application/xml"}
NS = 'xmlns:ns0="http://www.usharesoft.com/uforge"'


def instance_count(client, login: str) -> int:
    return client.get(f"/users/{login}/scannedinstances", headers={"Accept": "application/json"}).json()["total"]


def error_message(response) -> str:
    return xml_value(valid_xml(response, "uforgeError"), "localizedErrorMsg/message")


BAD_BODIES = {
    "malformed": (b"<ns0:scannedInstance " + NS.encode() + b"><name>x</nam", "malformed XML"),
    "xxe": (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
            b"<ns0:scannedInstance " + NS.encode() + b"><name>&e;</name></ns0:scannedInstance>", "DTD"),
    "entity expansion": (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
                         b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;">]>'
                         b"<ns0:scannedInstance " + NS.encode() + b"><name>&c;</name></ns0:scannedInstance>",
                         "DTD"),
    "wrong root": (b"<ns0:scan " + NS.encode() + b"><name>x</name></ns0:scan>", "expected a <scannedInstance>"),
    "invalid enumeration": (b"<ns0:scannedInstance " + NS.encode() + b"><distribution><name>Gentoo</name>"
                            b"</distribution><name>x</name></ns0:scannedInstance>", "schema"),
    "wrong type": (b"<ns0:scannedInstance " + NS.encode() + b"><name>x</name><ramSize>lots</ramSize>"
                   b"</ns0:scannedInstance>", "wrong type"),
    "no name": (b"<ns0:scannedInstance " + NS.encode() + b"></ns0:scannedInstance>", "needs a name"),
    "empty": (b"", "needs a <scannedInstance> body"),
}


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_bad_bodies_are_refused_with_a_clear_error(server, alice, case):
    body, expected = BAD_BODIES[case]
    with server.client(alice) as client:
        response = client.post(f"/users/{alice.login}/scannedinstances", content=body, headers=XML)
        assert response.status_code == 400, response.text
        assert expected in error_message(response)
        assert instance_count(client, alice.login) == 0


def test_malformed_json_is_refused(server, alice):
    with server.client(alice) as client:
        response = client.post(f"/users/{alice.login}/scannedinstances", content=b'{"name": ',
                               headers={"Content-Type": "application/json", "Accept": "application/json"})
        assert response.status_code == 400
        assert "malformed JSON" in response.json()["localizedErrorMsg"]["message"]
        assert instance_count(client, alice.login) == 0


def test_oversized_body_gets_413(server, alice):
    body = b"<ns0:scannedInstance " + NS.encode() + b"><name>" + b"x" * (2 * 1024 * 1024) + b"</name>" \
           b"</ns0:scannedInstance>"
    with server.client(alice) as client:
        response = client.post(f"/users/{alice.login}/scannedinstances", content=body, headers=XML)
        assert response.status_code == 413
        assert instance_count(client, alice.login) == 0


def test_duplicate_instance_name_gets_409(server, alice):
    body = b"<ns0:scannedInstance " + NS.encode() + b"><name>twin</name></ns0:scannedInstance>"
    with server.client(alice) as client:
        assert client.post(f"/users/{alice.login}/scannedinstances", content=body, headers=XML).status_code == 201
        response = client.post(f"/users/{alice.login}/scannedinstances", content=body, headers=XML)
        assert response.status_code == 409
        assert "twin" in error_message(response)
        assert instance_count(client, alice.login) == 1


@pytest.mark.parametrize("path, status", [
    ("/scannedinstances/424242", 404),
    ("/scannedinstances/abc", 400),
    ("/scannedinstances/424242/scans/1", 404),
    ("/scannedinstances/1/scans/xyz", 400),
    ("/scans?id=1,two", 400),
    ("/scannedinstances?orderby=password", 400),
    ("/scannedinstances?index=-1", 400),
    ("/scannedinstances/99999999999999999999", 400),  # beyond 64 bits: no database can hold it
    ("/scans?id=99999999999999999999", 400),
    ("/scannedinstances?index=99999999999999999999", 400),
])
def test_unknown_or_malformed_ids_get_a_clear_error(server, alice, path, status):
    with server.client(alice) as client:
        response = client.get(f"/users/{alice.login}{path}", headers=XML)
    assert response.status_code == status
    assert error_message(response)


JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


@pytest.mark.parametrize("body, expected", [
    (b'{"name": "deep", "x": ' + b"[" * 100000 + b"]" * 100000 + b"}", "nested too deeply"),
    (b'{"name": "nested", "distribution": {"detectedName": {"a": 1}}}', "detectedName must be a single value"),
    (b'{"name": "listed", "distribution": {"detectedArch": [1, 2]}}', "detectedArch must be a single value"),
    (b'{"name": "line\\r\\nX-Evil: 1"}', "printable characters"),
])
def test_json_bodies_that_cannot_be_stored_are_refused(server, alice, body, expected):
    with server.client(alice) as client:
        response = client.post(f"/users/{alice.login}/scannedinstances", content=body, headers=JSON_HEADERS)
        assert response.status_code == 400, response.text
        assert expected in response.json()["localizedErrorMsg"]["message"]
        assert instance_count(client, alice.login) == 0


def test_a_malformed_multipart_report_is_refused(server, alice):
    with server.client(alice) as client:
        created = client.post(f"/users/{alice.login}/scannedinstances", json={"name": "mp"}, headers=JSON_HEADERS)
        siid = created.json()["dbId"]
        response = client.post(f"/users/{alice.login}/scannedinstances/{siid}/scans", params={"crc": 1},
                               content=b"--XX\r\nbroken header line\r\n\r\ndata\r\n--XX--\r\n",
                               headers={"Content-Type": "multipart/form-data; boundary=XX",
                                        "Accept": "application/json"})
        assert response.status_code == 400, response.text
        assert "malformed multipart/form-data" in response.json()["localizedErrorMsg"]["message"]
        scans = client.get(f"/users/{alice.login}/scannedinstances/{siid}/scans", headers=JSON_HEADERS).json()
        assert scans["total"] == 0
