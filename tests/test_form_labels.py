"""Every form's labels as the page renders them (api/templates/fields.html): the page adds "(optional)" to a
question that is not required, so a title must not say it too. The RAS scoring page showed "What the carer
does (optional) (optional)" nine times (forms/ras_scoring.schema.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from api.page_forms import fields_for

ROOT = Path(__file__).resolve().parent.parent
FORMS = sorted(p.name.removesuffix(".schema.json") for p in (ROOT / "forms").glob("*.schema.json"))


@pytest.mark.parametrize("form", FORMS)
def test_no_label_says_optional_twice(form):
    from api.page_kit import templates

    schema = json.loads((ROOT / "forms" / f"{form}.schema.json").read_text(encoding="utf-8"))
    macro = templates.env.get_template("fields.html").module.field
    html = "".join(str(macro(f)) for f in fields_for(schema))
    assert "(optional) (optional)" not in html
    assert "(optional)</label> (optional)" not in html


def test_the_carer_question_of_the_ras_is_labelled_once():
    from api.page_kit import templates

    schema = json.loads((ROOT / "forms" / "ras_scoring.schema.json").read_text(encoding="utf-8"))
    html = "".join(str(templates.env.get_template("fields.html").module.field(f)) for f in fields_for(schema))
    assert html.count("What the carer does (optional)") == 9


def test_the_carers_ways_of_being_unable_are_in_words_not_codes():
    """The carer's assessment showed its checkboxes as the codes humanised: "Needs assistance incl prompting",
    "Significant pain distress anxiety", "Endangers health safety"."""
    from api.page_forms import walk

    schema = json.loads((ROOT / "forms" / "carers_assessment.schema.json").read_text(encoding="utf-8"))
    ways = [f for f in walk(fields_for(schema)) if f.key == "ways"]
    assert len(ways) == 8
    for f in ways:
        assert [label for _v, label in f.options] == [
            "Cannot do this without help", "Can only do this with a lot of pain, distress or anxiety",
            "Can do this, but it puts their own or someone else's health or safety at risk"]


def test_the_persons_ways_of_being_unable_are_in_words_not_codes():
    from api.page_forms import walk

    schema = json.loads((ROOT / "forms" / "needs_assessment.schema.json").read_text(encoding="utf-8"))
    ways = [f for f in walk(fields_for(schema)) if f.key == "ways"]
    assert len(ways) == 10
    for f in ways:
        assert [label for _v, label in f.options] == [
            "Cannot do this without help, including prompting",
            "Can only do this with a lot of pain, distress or anxiety",
            "Can do this, but it puts their own or someone else's health or safety at risk",
            "Can do this, but it takes a lot longer than would normally be expected"]
