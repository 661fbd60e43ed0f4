"""Test helpers: schema validation of XML answers against the contract's uforge.xsd, and XML/JSON comparison."""

from functools import cache
from pathlib import Path

from lxml import etree

NAMESPACE = "http://www.usharesoft.com/uforge"
_SHARED_XSD = Path(__file__).resolve().parents[2] / "shared" / "spec" / "uforge.xsd"
_PACKAGED_XSD = Path(__file__).resolve().parents[1] / "src" / "machinescan" / "server" / "wire" / "uforge.xsd"


@cache
def contract_schema() -> etree.XMLSchema:
    """The schema of the contract (shared/spec), falling back to the packaged copy outside the workspace."""
    path = _SHARED_XSD if _SHARED_XSD.exists() else _PACKAGED_XSD
    return etree.XMLSchema(etree.parse(str(path)))


def valid_xml(response, root: str) -> etree._Element:
    """Assert the UForge wire rules on an XML answer and return its root element."""
    assert response.headers["content-type"] == "application/xml", response.headers["content-type"]
    assert b'xmlns="' not in response.content, "a default namespace breaks UForge clients"
    element = etree.fromstring(response.content)
    assert element.tag == f"{{{NAMESPACE}}}{root}", element.tag
    assert element.prefix is not None
    for child in element.iter():
        if child is not element and isinstance(child.tag, str):
            assert etree.QName(child).namespace is None, f"child {child.tag} must be unqualified"
        if isinstance(child.tag, str):
            assert not child.attrib, f"{child.tag} has attributes"
    schema = contract_schema()
    assert schema.validate(element), schema.error_log.last_error
    return element


def _text_of(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def assert_same_values(element: etree._Element, value, path: str = "") -> None:
    """The XML element carries exactly the values of the JSON value (JSON may add keys of its own)."""
    if isinstance(value, list):
        children = list(element)
        assert len(children) == len(value), f"{path}: {len(children)} XML items, {len(value)} JSON items"
        for child, item in zip(children, value):
            assert_same_values(child, item, f"{path}/{child.tag}")
    elif isinstance(value, dict):
        for child in element:
            assert child.tag in value, f"{path}/{child.tag} is in XML but not in JSON"
            assert_same_values(child, value[child.tag], f"{path}/{child.tag}")
    else:
        assert (element.text or "") == _text_of(value), f"{path}: XML {element.text!r} != JSON {value!r}"


def xml_value(element: etree._Element, path: str) -> str | None:
    found = element.find(path)
    return None if found is None else found.text
