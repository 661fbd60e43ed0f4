"""The UForge XML schema (uforge.xsd) read once into an order table: which children each type has, in order."""

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from lxml import etree

XSD_PATH = Path(__file__).with_name("uforge.xsd")
NAMESPACE = "http://www.usharesoft.com/uforge"
_XS = "{http://www.w3.org/2001/XMLSchema}"


@dataclass(frozen=True)
class Field:
    """One child element of a complex type.

    `type` is an `xs:` type name, a complex type name, or None for an inline simple type (an enumeration).
    A wrapper (`<scans><scan/>…</scans>`) has `item` set to the repeated child element's name and `type`
    to that item's type.
    """

    name: str
    type: str | None
    item: str | None = None
    repeated: bool = False


class Schema:
    def __init__(self, xsd_path: Path = XSD_PATH):
        root = etree.parse(str(xsd_path), parser=etree.XMLParser(resolve_entities=False)).getroot()
        self._complex = {t.get("name"): t for t in root.findall(f"{_XS}complexType")}
        self._simple = {t.get("name") for t in root.findall(f"{_XS}simpleType")}
        self.root_types = {e.get("name"): e.get("type") for e in root.findall(f"{_XS}element")}
        self._fields: dict[str, tuple[Field, ...]] = {}

    def is_complex(self, type_name: str | None) -> bool:
        return type_name in self._complex

    def fields(self, type_name: str) -> tuple[Field, ...]:
        """The children of `type_name` in schema order: the base type's first, then its own."""
        if type_name not in self._fields:
            self._fields[type_name] = tuple(self._collect(self._complex[type_name]))
        return self._fields[type_name]

    def enumeration(self, type_name: str, field_name: str) -> frozenset[str]:
        """The values an inline enumeration of `field_name` in `type_name` admits."""
        for element in self._complex[type_name].iter(f"{_XS}element"):
            if element.get("name") == field_name:
                return frozenset(value.get("value") for value in element.iter(f"{_XS}enumeration"))
        return frozenset()

    def _collect(self, complex_type) -> list[Field]:
        fields: list[Field] = []
        extension = complex_type.find(f"{_XS}complexContent/{_XS}extension")
        if extension is not None:
            fields.extend(self.fields(_local(extension.get("base"))))
            sequence = extension.find(f"{_XS}sequence")
        else:
            sequence = complex_type.find(f"{_XS}sequence")
        for element in sequence.findall(f"{_XS}element") if sequence is not None else ():
            fields.append(_field(element))
        return fields


def _field(element) -> Field:
    name = element.get("name")
    repeated = element.get("maxOccurs") == "unbounded"
    if element.get("type"):
        return Field(name, _local(element.get("type")), repeated=repeated)
    inner = element.find(f"{_XS}complexType/{_XS}sequence/{_XS}element")
    if inner is not None:  # an anonymous wrapper of a repeated item
        return Field(name, _local(inner.get("type")), item=inner.get("name"), repeated=repeated)
    return Field(name, None, repeated=repeated)  # inline simple type (enumeration of strings)


def _local(qualified: str) -> str:
    """`xs:long` stays `xs:long`; `tns:Scan` or `Scan` becomes `Scan`."""
    prefix, _, local = qualified.rpartition(":")
    return f"xs:{local}" if prefix in ("xs", "xsd") else local


@cache
def uforge_schema() -> Schema:
    return Schema()


@cache
def uforge_validator() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(XSD_PATH)))
