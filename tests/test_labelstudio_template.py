"""The rating template ships inside the package and the tag names hildif writes are read from it
(hildif/labelstudio/template.py)."""

from __future__ import annotations

import pytest

from hildif.labelstudio.template import RatingTags, TemplateError, load_label_config, rating_tags


def test_the_shipped_template_gives_the_tag_names():
    from hildif.labelstudio.convert import COMMENT_NAME, FROM_NAME, SCORE_CHOICES, TO_NAME, result_for_score

    tags = rating_tags()
    assert tags == RatingTags("similarity", "anchor_premise", "comment", SCORE_CHOICES)
    assert (FROM_NAME, TO_NAME, COMMENT_NAME) == (tags.from_name, tags.to_name, tags.comment_name)
    first, comment = result_for_score(4, "same trick")
    assert (first["from_name"], first["to_name"], first["value"]) == ("similarity", "anchor_premise", {"choices": ["Similar"]})
    assert comment["from_name"] == "comment"


def test_the_names_follow_the_template():
    xml = load_label_config().replace('name="similarity"', 'name="rating"').replace(
        'toName="anchor_premise" choice=', 'toName="example_premise" choice=')
    tags = rating_tags(xml)
    assert (tags.from_name, tags.to_name, tags.comment_name) == ("rating", "example_premise", "comment")
    no_comment = rating_tags('<View><Text name="t" value="$t"/><Choices name="c" toName="t"><Choice value="A"/>'
                             "</Choices></View>")
    assert no_comment == RatingTags("c", "t", None, ("A",))


@pytest.mark.parametrize("xml, message", [
    ("<View>", "not valid XML"),
    ('<View><Text name="t" value="$t"/></View>', "expected one <Choices> tag for the rating, found 0"),
    ('<View><Choices name="a" toName="t"/><Choices name="b" toName="t"/></View>', "found 2"),
    ('<View><Choices name="a"/></View>', "needs both name and toName"),
])
def test_a_template_without_one_rating_is_refused(xml, message):
    with pytest.raises(TemplateError, match=message):
        rating_tags(xml)
