"""The wire codec and the distribution mapping, without a server."""

from datetime import datetime, timezone

import pytest
from helpers import contract_schema
from lxml import etree

from machinescan.server.wire.codec import WireError, from_json, from_xml, to_xml
from machinescan.server.wire.distributions import SCHEMA_ARCHES, SCHEMA_NAMES, schema_arch, schema_name


@pytest.mark.parametrize("detected, id_like, expected", [
    ("debian", None, "Debian"), ("ubuntu", "debian", "Ubuntu"), ("rocky", "rhel centos fedora", "CentOS"),
    ("rhel", None, "RedHat Enterprise Linux"), ("ol", None, "Oracle Linux"), ("sles", None,
     "SUSE Linux Enterprise Server"), ("opensuse-leap", "suse opensuse", "OpenSUSE"),
    ("mycorp", "rhel fedora", "RedHat Enterprise Linux"), ("Ubuntu", None, "Ubuntu"), ("alpine", None, "Debian"),
])
def test_distribution_names_map_to_the_nearest_schema_value(detected, id_like, expected):
    assert schema_name(detected, id_like) == expected
    assert expected in SCHEMA_NAMES


@pytest.mark.parametrize("detected, expected", [
    ("amd64", "x86_64"), ("x86_64", "x86_64"), ("i686", "i686"), ("aarch64", "noarch"), (None, "noarch"),
])
def test_architectures_map_to_schema_values(detected, expected):
    assert schema_arch(detected) == expected in SCHEMA_ARCHES


def test_a_resource_written_in_any_key_order_comes_out_in_schema_order_and_validates():
    created = datetime(2026, 12, 3, 19, 8, 2, tzinfo=timezone.utc)
    resource = {"uri": "u", "name": "web", "scans": [], "created": created, "dbId": 7,
                "distribution": {"version": "12", "name": "Debian", "arch": "x86_64"}}
    element = etree.fromstring(to_xml("scannedInstance", resource))
    assert [child.tag for child in element] == ["created", "dbId", "distribution", "name", "scans", "uri"]
    assert element.findtext("created") == "2026-12-03T19:08:02Z"
    assert contract_schema().validate(element)


def test_xml_reads_back_to_typed_values():
    body = (b'<ns0:scannedInstance xmlns:ns0="http://www.usharesoft.com/uforge"><name>web</name>'
            b"<ramSize>2048</ramSize><overlayIncluded>true</overlayIncluded></ns0:scannedInstance>")
    assert from_xml(body, "scannedInstance") == {"name": "web", "ramSize": 2048, "overlayIncluded": True}


def test_control_characters_are_replaced_so_the_xml_stays_well_formed():
    element = etree.fromstring(to_xml("scannedInstance", {"name": "bad\x01name"}))
    assert element.findtext("name") == "bad\ufffdname"


def test_json_keeps_own_keys_and_checks_schema_fields():
    body = b'{"name": "web", "distribution": {"detectedName": "alpine", "version": "3.19"}}'
    assert from_json(body, "scannedInstance") == {
        "name": "web", "distribution": {"version": "3.19", "detectedName": "alpine"}}
    with pytest.raises(WireError):
        from_json(b'{"name": "web", "ramSize": "lots"}', "scannedInstance")
    with pytest.raises(WireError):
        from_json(b'{"name": "web", "distribution": "Debian"}', "scannedInstance")
