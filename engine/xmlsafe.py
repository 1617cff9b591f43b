"""Hardened intake for BPMN and DMN files: nothing reaches lxml until it is vetted.

Diagrams come from modellers' tools and from uploads, so a file may be hostile:
entity expansion (billion laughs, quadratic blowup), external entities reading local
files or URLs, external DTDs, XInclude, or simply huge. `parse_xml` refuses all of these
with `UnsafeXmlError`, and reports XML that is not well-formed (or not UTF-8) as a
`DefinitionError` with the line, so a modeller can fix it.

Order of checks: size, UTF-8, then a defusedxml (expat) pass that forbids any DTD,
entity declaration or external reference; only then lxml, with entity resolution and
network access off, builds the tree that later code uses (elements keep `.sourceline`).
BPMN and DMN never need a DOCTYPE, so any DOCTYPE at all is refused.
"""

from __future__ import annotations

import re
import xml.parsers.expat
from xml.etree.ElementTree import ParseError

import defusedxml.ElementTree as defused_et
from defusedxml import DefusedXmlException, DTDForbidden
from lxml import etree

from engine.errors import DefinitionError, Problem, UnsafeXmlError

__all__ = ["MAX_XML_BYTES", "parse_xml"]

MAX_XML_BYTES: int = 5 * 1024 * 1024

_XINCLUDE_NS = "http://www.w3.org/2001/XInclude"
_PARAMETER_ENTITY = re.compile(r"<!ENTITY\s+%")
_EXTERNAL_ENTITY = re.compile(r"<!ENTITY\s[^>]*\b(?:SYSTEM|PUBLIC)\b")
_ENTITY = re.compile(r"<!ENTITY\b")
_DOCTYPE = re.compile(r"<!DOCTYPE\b")


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    value, unit = (n / 1024, "KB") if n < 1024 * 1024 else (n / (1024 * 1024), "MB")
    return f"{value:.1f}".rstrip("0").rstrip(".") + f" {unit}"


def _line_of(text: str, pattern: re.Pattern[str]) -> int | None:
    match = pattern.search(text)
    return text.count("\n", 0, match.start()) + 1 if match else None


def _malformed(filename: str, line: int | None, detail: str) -> DefinitionError:
    return DefinitionError([Problem(file=filename, line=line, message=f"not well-formed XML: {detail}")])


def _describe_dtd(text: str, err: DefusedXmlException) -> tuple[str, int | None]:
    """Name the most dangerous construct present, for the message; any DTD is refused anyway."""
    for pattern, what in (
        (_PARAMETER_ENTITY, "a parameter entity declaration"),
        (_EXTERNAL_ENTITY, "an external entity declaration (it could read local files or URLs)"),
        (_ENTITY, "an entity declaration (entity expansion such as billion laughs)"),
    ):
        line = _line_of(text, pattern)
        if line is not None:
            return what, line
    line = _line_of(text, _DOCTYPE)
    if isinstance(err, DTDForbidden) and (err.sysid or err.pubid):
        return f"an external DTD reference ({err.sysid or err.pubid})", line
    return "a DOCTYPE declaration", line


def _vet(data: bytes, text: str, filename: str) -> None:
    """Expat pass that refuses DTDs, entities and external references before lxml sees the bytes."""
    try:
        defused_et.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as err:
        what, line = _describe_dtd(text, err)
        raise UnsafeXmlError(
            f"{filename}: refused: the file contains {what}; DOCTYPE, DTD and entity "
            f"declarations are not allowed in BPMN/DMN files",
            file=filename, line=line,
        ) from None
    except ParseError as err:
        line, column = err.position
        reason = xml.parsers.expat.ErrorString(err.code)
        raise _malformed(filename, line, f"{reason} (line {line}, column {column + 1})") from None


def parse_xml(data: bytes, filename: str, max_bytes: int = MAX_XML_BYTES) -> etree._ElementTree:
    """Vet and parse one BPMN/DMN file; see the module docstring for what is refused."""
    if len(data) > max_bytes:
        raise UnsafeXmlError(
            f"{filename}: file is {_size(len(data))}; the limit is {_size(max_bytes)}", file=filename
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        detail = f"the file is not UTF-8 (byte 0x{data[err.start]:02x} at offset {err.start})"
        raise _malformed(filename, line, detail) from None
    if not text.strip():
        raise _malformed(filename, 1, "the file is empty")

    _vet(data, text, filename)

    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
        huge_tree=False, remove_comments=False,
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as err:
        # Expat accepted it, libxml2 did not (their rules differ at the edges).
        detail = err.msg
        if "Excessive depth" in detail:  # libxml2's words ("…, use XML_PARSE_HUGE option") mean nothing to an owner
            detail = ("elements are nested more than 256 deep, far deeper than any diagram "
                      f"(line {err.lineno}, column {err.offset})")
        raise _malformed(filename, err.lineno, detail) from None

    # lxml never processes XInclude unless asked, but a file that relies on it is not ours to run.
    for element in root.iter(f"{{{_XINCLUDE_NS}}}*"):
        raise UnsafeXmlError(
            f"{filename}: refused: XInclude ({etree.QName(element).localname}) "
            "is not allowed in BPMN/DMN files",
            file=filename, line=element.sourceline,
        )
    return root.getroottree()
