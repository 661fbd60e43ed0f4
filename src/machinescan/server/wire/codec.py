"""Resources as plain dicts, written to and read from UForge XML and JSON.

A resource is a dict whose keys are the schema's element names; a wrapper field holds a list. Keys the
schema does not know (our own fields) go to JSON only, so XML always validates against uforge.xsd.
"""

import json
import re
from datetime import datetime, timezone
from typing import Any

from lxml import etree

from .schema import NAMESPACE, Schema, uforge_schema, uforge_validator

PREFIX = "ns0"  # clients need a prefixed root: a default namespace breaks them
_INVALID_XML_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


class WireError(ValueError):
    """A request body that cannot be read as the expected resource."""


def format_datetime(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return format_datetime(value)
    return _INVALID_XML_CHARS.sub("\ufffd", str(value))


# ---------------------------------------------------------------- writing


def to_xml(root: str, resource: dict, schema: Schema | None = None) -> bytes:
    schema = schema or uforge_schema()
    element = etree.Element(f"{{{NAMESPACE}}}{root}", nsmap={PREFIX: NAMESPACE})
    _fill(element, schema.root_types[root], resource, schema)
    return etree.tostring(element, xml_declaration=True, encoding="UTF-8", standalone=True)


def _fill(element, type_name: str, resource: dict, schema: Schema) -> None:
    if not isinstance(resource, dict):
        raise WireError(f"<{etree.QName(element).localname}> must be an object, not {resource!r:.40}")
    for field in schema.fields(type_name):
        value = resource.get(field.name)
        if value is None:
            continue
        if (field.item or field.repeated) and not isinstance(value, list):
            raise WireError(f"<{field.name}> must be a list")
        if field.item:
            wrapper = etree.SubElement(element, field.name)
            for item in value:
                _append(wrapper, field.item, field.type, item, schema)
        elif field.repeated:
            for item in value:
                _append(element, field.name, field.type, item, schema)
        else:
            _append(element, field.name, field.type, value, schema)


def _append(parent, name: str, type_name: str | None, value: Any, schema: Schema) -> None:
    child = etree.SubElement(parent, name)
    if schema.is_complex(type_name):
        _fill(child, type_name, value, schema)
    else:
        child.text = _scalar_text(value)


def to_json(resource: dict) -> bytes:
    """JSON mirrors XML, where absent values are omitted: keys whose value is None are left out."""
    return json.dumps(_present(resource), default=_json_default, ensure_ascii=False,
                      separators=(",", ":")).encode()


def _present(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _present(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_present(item) for item in value]
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_datetime(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# ---------------------------------------------------------------- reading

_SAFE_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, remove_comments=True
)


def from_xml(body: bytes, root: str, schema: Schema | None = None) -> dict:
    """Read a request body as the resource `root`, refusing DTDs and entities (XXE, entity expansion)."""
    schema = schema or uforge_schema()
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise WireError("XML documents with a DTD or entities are refused")
    try:
        element = etree.fromstring(body, parser=_SAFE_PARSER)
    except etree.XMLSyntaxError as error:
        raise WireError(f"malformed XML: {error}") from None
    found = etree.QName(element)
    if found.localname != root or found.namespace not in (NAMESPACE, None):
        raise WireError(f"expected a <{root}> element in namespace {NAMESPACE}, got <{found.localname}>")
    try:
        resource = _read(element, schema.root_types[root], schema)
    except ValueError as error:
        raise WireError(f"<{root}> holds a value of the wrong type: {error}") from None
    # Validate the resource as we would write it: children in any order are accepted, while every
    # value must still have its schema type and enumerations hold.
    validator = uforge_validator()
    if not validator.validate(etree.fromstring(to_xml(root, resource, schema))):
        raise WireError(f"<{root}> does not match the UForge schema: {validator.error_log.last_error.message}")
    return resource


def from_json(body: bytes, root: str, schema: Schema | None = None) -> dict:
    """Read a JSON body: the schema's fields are validated by writing them as XML and reading that back
    (one validation path for both formats); keys the schema does not know (ours) are kept as sent."""
    schema = schema or uforge_schema()
    try:
        sent = json.loads(body)
    except (UnicodeDecodeError, ValueError) as error:
        raise WireError(f"malformed JSON: {error}") from None
    except RecursionError:
        raise WireError("malformed JSON: nested too deeply") from None
    if not isinstance(sent, dict):
        raise WireError(f"expected a JSON object for {root}")
    validated = from_xml(to_xml(root, sent, schema), root, schema)
    return _with_own_keys(validated, sent, schema.root_types[root], schema)


def _with_own_keys(validated: dict, sent: dict, type_name: str, schema: Schema) -> dict:
    fields = {field.name: field for field in schema.fields(type_name)}
    for key, value in sent.items():
        field = fields.get(key)
        if field is None:
            # Our own keys hold single values (detected names, versions): nothing nested reaches a column.
            if isinstance(value, (dict, list)):
                raise WireError(f"{key} must be a single value, not {type(value).__name__}")
            validated[key] = value
        elif schema.is_complex(field.type) and not (field.item or field.repeated) and key in validated:
            _with_own_keys(validated[key], value, field.type, schema)
    return validated


def _read(element, type_name: str, schema: Schema) -> dict:
    fields = {field.name: field for field in schema.fields(type_name)}
    resource: dict[str, Any] = {}
    for child in element:
        field = fields.get(etree.QName(child).localname)
        if field is None:
            continue
        if field.item:
            resource[field.name] = [_value(item, field.type, schema) for item in child]
        elif field.repeated:
            resource.setdefault(field.name, []).append(_value(child, field.type, schema))
        else:
            resource[field.name] = _value(child, field.type, schema)
    return resource


def _value(element, type_name: str | None, schema: Schema) -> Any:
    if schema.is_complex(type_name):
        return _read(element, type_name, schema)
    text = (element.text or "").strip()
    if type_name == "xs:boolean":
        return text in ("true", "1")
    if type_name in ("xs:int", "xs:long", "xs:short", "xs:integer"):
        return int(text)
    if type_name == "xs:dateTime":
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    return element.text or ""
