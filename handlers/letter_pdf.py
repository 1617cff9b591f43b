"""A filed letter as the council posts it: an A4 PDF with the council's letterhead, made by WeasyPrint.

The letter's text (`documents.body`, written by handlers/letters.py) is what the council decided to
say; this module lays it out: the letterhead from the council's details (processes/config/council.json,
`handlers.letters.load_council`), the addressee in the window of the envelope (where GOV.UK Notify's
precompiled letters read it: 24.6 mm from the left, 50.3 mm from the top, 95.4 mm by 26.8 mm), the date,
then the letter with its title as the heading, paragraphs and lists as the text has them.

The PDF is tagged for assistive technology (PDF/UA-1: a structure tree, the title shown as the document's
title, the language en-GB) and the same text always gives the same bytes: the file's identifier and date
come from the letter (its id, text and the day it was filed), never from the clock. Nothing is fetched
while rendering: no file, no network address. WeasyPrint is imported only when a PDF is made.
"""

from __future__ import annotations

import hashlib
import re
from html import escape
from typing import Any

from . import working_days
from .letters import load_council

_DATE = re.compile(r"^\d{1,2} [A-Z][a-z]+ \d{4}$")
_BULLET = re.compile(r"^\s*[-*•]\s+")
ADDRESS_LINES_MAX = 7  # what fits in the envelope window (GOV.UK Notify reads no more)

CSS = """
@page { size: A4; margin: 15mm 18mm 20mm 18mm;
  @bottom-right { content: "Page " counter(page) " of " counter(pages); font: 9pt Arial, Helvetica, sans-serif; } }
html { font: 11pt/1.45 Arial, Helvetica, sans-serif; color: #0b0c0c; }
body { margin: 0; }
.letterhead { position: absolute; top: 0; right: 0; width: 70mm; text-align: right;
  font-size: 9.5pt; line-height: 1.35; }
.letterhead .council { font-size: 15pt; font-weight: bold; margin: 0 0 1mm 0; }
.letterhead p { margin: 0; }
.addressee { position: absolute; top: 35.3mm; left: 6.6mm; width: 95.4mm; height: 26.8mm; overflow: hidden;
  font-size: 10pt; line-height: 1.3; }
.addressee p { margin: 0; }
.dated { margin: 78mm 0 4mm 0; }
h1 { font-size: 14pt; margin: 5mm 0 3mm 0; }
p { margin: 0 0 3mm 0; }
ul { margin: 0 0 3mm 0; padding-left: 6mm; }
li { margin-bottom: 1mm; }
"""


# ---------------------------------------------------------------------- reading the letter's text
def _paragraphs(text: str) -> list[list[str]]:
    out: list[list[str]] = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        lines = [line.rstrip() for line in block.split("\n") if line.strip()]
        if lines:
            out.append(lines)
    return out


def _letterhead_lines(council: dict[str, Any]) -> set[str]:
    lines = {str(council.get("name", "")), str(council.get("department", "")),
             f"Telephone: {council.get('phone', '')}", f"Email: {council.get('email', '')}"}
    lines.update(str(a) for a in council.get("address") or [])
    return {line.strip().lower() for line in lines if line.strip()}


def _person_address(person: dict[str, Any] | None) -> list[str]:
    person = person or {}
    address = person.get("address") or []
    lines = [part.strip() for part in address.split(",")] if isinstance(address, str) else [str(a) for a in address]
    postcode = str(person.get("postcode") or "").strip()
    if postcode and not any(postcode.replace(" ", "").lower() in line.replace(" ", "").lower() for line in lines):
        lines.append(postcode)
    name = str(person.get("name") or "").strip()
    return [line for line in ([name] if name else []) + lines if line]


def split_letter(body: str, council: dict[str, Any], person: dict[str, Any] | None = None
                 ) -> tuple[list[str], str | None, list[list[str]]]:
    """(addressee lines, date line or None, the rest as paragraphs of lines).

    The letter's own letterhead lines are dropped (the PDF draws the letterhead); the date is the first
    paragraph that reads as one ("4 January 2027") and the addressee the paragraph after it. A text laid
    out otherwise keeps every paragraph and is addressed from the case's details (`person`)."""
    head = _letterhead_lines(council)
    paras = _paragraphs(body)
    while paras:
        kept = [line for line in paras[0] if line.strip().lower() not in head]
        if kept:
            paras[0] = kept
            break
        paras.pop(0)
    if paras and len(paras[0]) == 1 and _DATE.match(paras[0][0].strip()):
        dated = paras[0][0].strip()
        rest = paras[1:]
        if rest and len(rest[0]) <= ADDRESS_LINES_MAX and not rest[0][0].lower().startswith(("our reference", "dear")):
            return [line.strip() for line in rest[0]], dated, rest[1:]
        return _person_address(person), dated, rest
    return _person_address(person), None, paras


def address_of(body: str, person: dict[str, Any] | None = None, council: dict[str, Any] | None = None) -> list[str]:
    """The lines the letter is addressed to (what goes in the envelope window)."""
    return split_letter(body, council if council is not None else load_council(), person)[0]


def _blocks(lines: list[str]) -> str:
    """One paragraph of the text as HTML: list items (lines starting "- ") as a list, prose lines that
    were wrapped joined into one paragraph, short lines kept as lines (a sign-off, an address)."""
    html: list[str] = []
    items: list[str] = []
    prose: list[str] = []

    def end_prose() -> None:
        if prose:
            html.append("<p>" + "".join(prose) + "</p>")
            prose.clear()

    def end_items() -> None:
        if items:
            html.append("<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>")
            items.clear()

    previous = ""
    for line in lines:
        if _BULLET.match(line):
            end_prose()
            items.append(escape(_BULLET.sub("", line).strip()))
        elif items and line[:1].isspace():
            items[-1] += " " + escape(line.strip())
        else:
            end_items()
            if prose:
                prose.append(" " if len(previous) > 60 else "<br>")
            prose.append(escape(line.strip()))
        previous = line
    end_prose()
    end_items()
    return "".join(html)


# ---------------------------------------------------------------------- the PDF
def letter_html(doc: dict[str, Any], *, reference: str, council: dict[str, Any],
                person: dict[str, Any] | None = None) -> str:
    addressee, dated, rest = split_letter(doc["body"], council, person)
    title = str(doc["title"])
    filed = working_days.as_local_date(doc["created_at"])
    if dated is None:
        dated = f"{filed.day} {filed:%B %Y}"
    parts: list[str] = []
    heading_done = False
    for para in rest:
        text = " ".join(line.strip() for line in para)
        if not heading_done and text.lower() == title.lower():
            parts.append(f"<h1>{escape(title)}</h1>")
            heading_done = True
        else:
            parts.append(_blocks(para))
    if not heading_done:
        parts.insert(0, f"<h1>{escape(title)}</h1>")
    address = [escape(str(a)) for a in council.get("address") or []]
    head = "".join(f"<p>{line}</p>" for line in [
        escape(str(council.get("department", ""))), *address,
        f"Telephone: {escape(str(council.get('phone', '')))}", f"Email: {escape(str(council.get('email', '')))}"])
    return (
        '<!DOCTYPE html><html lang="en-GB"><head><meta charset="utf-8">'
        f"<title>{escape(title)} – {escape(str(council.get('name', '')))}</title>"
        f'<meta name="author" content="{escape(str(council.get("name", "")))}">'
        f'<meta name="description" content="Letter on case {escape(reference)}">'
        f'<meta name="dcterms.created" content="{filed.isoformat()}">'
        f"<style>{CSS}</style></head><body>"
        f'<div class="letterhead"><p class="council">{escape(str(council.get("name", "")))}</p>{head}</div>'
        '<div class="addressee">' + "".join(f"<p>{escape(a)}</p>" for a in addressee[:ADDRESS_LINES_MAX])
        + "</div>"
        f'<p class="dated">{escape(dated)}</p>'
        f'<main>{"".join(parts)}</main></body></html>')


def render_pdf(doc: dict[str, Any], *, reference: str, person: dict[str, Any] | None = None,
               council: dict[str, Any] | None = None) -> bytes:
    """The letter `doc` (a `documents` row: id, title, body, created_at) as an A4 PDF/UA-1 file; the same
    letter always gives the same bytes."""
    import weasyprint  # imported here: only PDFs need it (and its system libraries)

    council = council if council is not None else load_council()
    html = letter_html(doc, reference=reference, council=council, person=person)
    identifier = hashlib.sha256(f"{doc.get('id')}\n{doc['title']}\n{doc['body']}".encode()).hexdigest()[:32]
    return weasyprint.HTML(string=html, url_fetcher=_fetch_nothing).write_pdf(
        pdf_variant="pdf/ua-1", pdf_identifier=identifier.encode())


def _fetch_nothing(url: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
    raise ValueError(f"letter PDFs fetch nothing (asked for {url[:60]!r})")
