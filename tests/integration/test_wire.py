"""Every XML answer validates against uforge.xsd, and JSON carries the same values."""

import zlib

import pytest
from helpers import assert_same_values, valid_xml, xml_value
from reports import file, package, report_bytes
from scanning import wait_for_scan

XML = {"Accept": "application/xml", "Content-Type": "application/xml"}
JSON = {"Accept": "application/json"}


def instance_xml(name: str, distro: str = "Debian", arch: str = "x86_64", version: str = "12") -> str:
    return ('<ns0:scannedInstance xmlns:ns0="http://www.usharesoft.com/uforge">'
            f"<distribution><arch>{arch}</arch><name>{distro}</name><version>{version}</version></distribution>"
            f"<name>{name}</name></ns0:scannedInstance>")


def upload_report(client, uid: str, siid: int, body: bytes = b"not yet ingested"):
    return client.post(f"/users/{uid}/scannedinstances/{siid}/scans", params={"crc": zlib.crc32(body)},
                       content=body, headers={**XML, "Content-Type": "application/octet-stream"})


@pytest.fixture
def populated(server, alice):
    """alice with two instances, the first with two scans."""
    with server.client(alice) as client:
        first = client.post(f"/users/{alice.login}/scannedinstances", content=instance_xml("web"), headers=XML)
        assert first.status_code == 201, first.text
        second = client.post(f"/users/{alice.login}/scannedinstances", content=instance_xml("db", "Ubuntu"),
                             headers=XML)
        assert second.status_code == 201, second.text
        siid = int(xml_value(valid_xml(first, "scannedInstance"), "dbId"))
        for _ in range(2):
            report = report_bytes([package("bash", "5.2-1", status="installed")],
                                  [file("/etc/motd", change="modified", packages=["bash"]),
                                   file("/srv/new", change="added"), file("/srv", kind="dir", change="added")],
                                  profile={"timezone": "UTC", "users": [{"name": "root", "uid": 0}]})
            created = upload_report(client, alice.login, siid, report)
            assert created.status_code == 201
            wait_for_scan(client, f"/users/{alice.login}/scannedinstances/{siid}/scans/"
                                  f"{xml_value(valid_xml(created, 'scan'), 'dbId')}")
    return alice, siid


def paths(login: str, siid: int, sid: int) -> list[tuple[str, str]]:
    base = f"/users/{login}"
    return [
        ("/status", "serviceStatus"),
        (base, "user"),
        (f"{base}/scannedinstances", "scannedInstances"),
        (f"{base}/scannedinstances?includeScans=true", "scannedInstances"),
        (f"{base}/scannedinstances/{siid}", "scannedInstance"),
        (f"{base}/scannedinstances/{siid}?includeScans=true", "scannedInstance"),
        (f"{base}/scannedinstances/{siid}/scans", "scans"),
        (f"{base}/scannedinstances/{siid}/scans/{sid}", "scan"),
        (f"{base}/scans", "scans"),
        (f"{base}/scannedinstances/{siid}/scans/{sid}/packages", "scannedPackages"),
        (f"{base}/scannedinstances/{siid}/scans/{sid}/packages?excludeFiles=false", "scannedPackages"),
        (f"{base}/scannedinstances/{siid}/scans/{sid}/packages?compareWith={sid + 1}", "scannedPackages"),
        (f"{base}/scannedinstances/{siid}/scans/{sid}/files", "scannedFiles"),
        (f"{base}/scannedinstances/{siid}/scans/{sid}/files?delta=true", "scannedFiles"),
        (f"{base}/scannedinstances/{siid}/scans/{sid}/files//delta?max-depth=3", "scannedDirectory"),
        (f"{base}/scannedinstances/{siid}/scans/{sid}/installProfile", "installProfile"),
        (f"{base}/scannedinstances/999999", "uforgeError"),
        (f"{base}/nothing-here", "uforgeError"),
    ]


def test_every_xml_answer_validates_and_json_carries_the_same_values(server, populated):
    alice, siid = populated
    with server.client(alice) as client:
        scans = valid_xml(client.get(f"/users/{alice.login}/scannedinstances/{siid}/scans", headers=XML), "scans")
        sid = int(xml_value(scans, "scans/scan/dbId"))
        for path, root in paths(alice.login, siid, sid):
            as_xml = client.get(path, headers=XML)
            as_json = client.get(path, headers=JSON)
            assert as_xml.status_code == as_json.status_code, path
            assert (as_xml.status_code < 300) == (root != "uforgeError"), (path, as_xml.text)
            assert as_json.headers["content-type"] == "application/json"
            element = valid_xml(as_xml, root)
            assert_same_values(element, as_json.json(), path)


def test_list_wrappers_are_present_even_when_empty(server, alice):
    with server.client(alice) as client:
        listing = valid_xml(client.get(f"/users/{alice.login}/scannedinstances", headers=XML), "scannedInstances")
        assert xml_value(listing, "total") == "0"
        assert listing.find("scannedInstances") is not None
        assert client.get(f"/users/{alice.login}/scannedinstances", headers=JSON).json() == {
            "total": 0, "scannedInstances": []}


def test_instances_with_scans_carry_distribution_and_scans(server, populated):
    alice, _ = populated
    with server.client(alice) as client:
        listing = valid_xml(client.get(f"/users/{alice.login}/scannedinstances",
                                       params={"includeScans": "True"}, headers=XML), "scannedInstances")
    instances = listing.findall("scannedInstances/scannedInstance")
    assert [xml_value(i, "name") for i in instances] == ["web", "db"]
    for instance in instances:
        for field in ("name", "version", "arch"):
            assert xml_value(instance, f"distribution/{field}"), field
        assert instance.find("scans") is not None
    assert [len(i.findall("scans/scan")) for i in instances] == [2, 0]
    for scan in listing.iter("scan"):
        assert scan.find("status") is not None


def test_children_follow_schema_order(server, populated):
    alice, siid = populated
    with server.client(alice) as client:
        element = valid_xml(client.get(f"/users/{alice.login}/scannedinstances/{siid}", headers=XML),
                            "scannedInstance")
    order = [child.tag for child in element]
    assert order.index("created") < order.index("dbId") < order.index("lastModified") \
        < order.index("distribution") < order.index("name") < order.index("uri")


def test_detected_values_map_to_schema_enumerations_and_stay_exact_in_json(server, alice):
    detected = {"name": "pi", "distribution": {"detectedName": "rocky", "detectedArch": "aarch64",
                                               "version": "9.3"}}
    with server.client(alice) as client:
        created = client.post(f"/users/{alice.login}/scannedinstances", json=detected, headers=JSON)
        assert created.status_code == 201, created.text
        uri = f"/users/{alice.login}/scannedinstances/{created.json()['dbId']}"
        element = valid_xml(client.get(uri, headers=XML), "scannedInstance")
        as_json = client.get(uri, headers=JSON).json()["distribution"]
    assert (xml_value(element, "distribution/name"), xml_value(element, "distribution/arch")) == (
        "CentOS", "noarch")
    assert (as_json["detectedName"], as_json["detectedArch"], as_json["version"]) == ("rocky", "aarch64", "9.3")


def test_schema_fields_of_json_bodies_keep_the_enumerations(server, alice):
    body = {"name": "pi", "distribution": {"name": "rocky", "arch": "x86_64", "version": "9"}}
    with server.client(alice) as client:
        refused = client.post(f"/users/{alice.login}/scannedinstances", json=body, headers=JSON)
        assert refused.status_code == 400
        assert "schema" in refused.json()["localizedErrorMsg"]["message"]
        assert client.get(f"/users/{alice.login}/scannedinstances", headers=JSON).json()["total"] == 0


def test_dates_are_iso8601_utc(server, populated):
    alice, siid = populated
    with server.client(alice) as client:
        resource = client.get(f"/users/{alice.login}/scannedinstances/{siid}", headers=JSON).json()
    assert resource["created"].endswith("Z") and resource["created"][10] == "T"


def test_odd_slashes_of_the_sdk_are_accepted(server, populated):
    alice, siid = populated
    with server.client(alice) as client:
        response = client.get(f"/users/{alice.login}/scannedinstances//{siid}/", headers=XML)
    assert response.status_code == 200
    assert xml_value(valid_xml(response, "scannedInstance"), "dbId") == str(siid)


def test_delete_answers_204_without_body(server, populated):
    alice, siid = populated
    with server.client(alice) as client:
        response = client.delete(f"/users/{alice.login}/scannedinstances/{siid}", headers=XML)
    assert response.status_code == 204
    assert response.content == b""


def test_out_of_scope_resources_answer_501_with_uforge_error(server, alice):
    with server.client(alice) as client:
        response = client.get(f"/users/{alice.login}/images", headers=XML)
    assert response.status_code == 501
    assert xml_value(valid_xml(response, "uforgeError"), "statusCode") == "501"


def test_openapi_docs_are_served(server):
    import httpx

    assert httpx.get(server.url + "/docs").status_code == 200
    assert "/api/users/{uid}/scannedinstances" in httpx.get(server.url + "/openapi.json").json()["paths"]
