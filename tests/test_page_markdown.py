"""User-given text reaches Markdown escaped, so a file or model name shows as typed."""

import pytest

from pages.common import code_span, escape_markdown


@pytest.mark.parametrize(
    "text",
    ["**bold**", "[link](http://example.com)", "<b>x</b>", "# title", ":red[alarm]", "a_b_c", "`code`", "$x$"],
)
def test_escaped_text_has_no_unescaped_markdown_character(text):
    escaped = escape_markdown(text)
    unescaped = escaped.replace("\\", "")
    assert unescaped == text.replace("\\", "")
    for index, character in enumerate(escaped):
        if character in "*[]()<>#:`_$" and (index == 0 or escaped[index - 1] != "\\"):
            pytest.fail(f"{character!r} is not escaped in {escaped!r}")


def test_a_code_span_cannot_be_closed_early():
    assert code_span("a`b") == "`a'b`"
