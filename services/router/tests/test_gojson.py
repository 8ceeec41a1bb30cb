"""Go's encoding/json errors for decoding into a map, as Milvus 2.3.5 reports them (offline)."""

from __future__ import annotations

import pytest

from mishards.router.gojson import go_quote_rune, quote_char, unmarshal_map_error

MAP = "map[string]interface {}"

# bytes -> Go's error (None: decoded): what Milvus 2.3.5 answered to each as a JSON field's row (after 'IO failed: ')
CASES = [
    (b"{bad", "invalid character 'b' looking for beginning of object key string"),
    (b"", "unexpected end of JSON input"),
    (b'{"a":1} x', "invalid character 'x' after top-level value"),
    (b"NaN", "invalid character 'N' looking for beginning of value"),
    (b'{"a":"x\x01y"}', "invalid character '\\x01' in string literal"),
    (b'{"a":' * 10001 + b"1" + b"}" * 10001, "invalid character '{' exceeded max depth"),
    (b"[1,2]", f"json: cannot unmarshal array into Go value of type {MAP}"),
    (b"3", f"json: cannot unmarshal number into Go value of type {MAP}"),
    (b'"s"', f"json: cannot unmarshal string into Go value of type {MAP}"),
    (b'{"a":1e400}', "json: cannot unmarshal number 1e400 into Go value of type float64"),
    (b"null", None),
    (b'{"a":"\xff"}', None),
    (b'{"a":"\\ud800"}', None),
    (b'{"a":1,"a":2}', None),
    (b'  {"a":1}\n', None),
    # scanner.go's other states
    (b"true", f"json: cannot unmarshal bool into Go value of type {MAP}"),
    (b"-", "invalid character ' ' in numeric literal"),
    (b"1.", "invalid character ' ' after decimal point in numeric literal"),
    (b"1e", "invalid character ' ' in exponent of numeric literal"),
    (b"01", "invalid character '1' after top-level value"),
    (b'{"a"}', "invalid character '}' after object key"),
    (b'{"a":1 "b":2}', "invalid character '\"' after object key:value pair"),
    (b"[1 2]", "invalid character '2' after array element"),
    (b'"\\x"', "invalid character 'x' in string escape code"),
    (b'"\\u12g4"', "invalid character 'g' in \\u hexadecimal character escape"),
    (b"tru", "invalid character ' ' in literal true (expecting 'e')"),
    (b"nul", "invalid character ' ' in literal null (expecting 'l')"),
    (b"fals", "invalid character ' ' in literal false (expecting 'e')"),
    (b"\xef\xbb\xbf{}", "invalid character 'ï' looking for beginning of value"),
    (b"'a'", "invalid character '\\'' looking for beginning of value"),
    (
        b'{"a":[1,{"b":' + b"9" * 400 + b"}]}",
        f"json: cannot unmarshal number {'9' * 400} into Go value of type float64",
    ),
    (b"[" * 2000 + b"]" * 2000, f"json: cannot unmarshal array into Go value of type {MAP}"),
    (b'{"a":' + b"[" * 2000 + b"]" * 2000 + b"}", None),
]


@pytest.mark.parametrize(("data", "error"), CASES)
def test_unmarshal_into_a_map(data: bytes, error: str | None) -> None:
    assert unmarshal_map_error(data) == error


def test_quote_char_names_bytes_as_go_does() -> None:
    assert [quote_char(c) for c in b"a'\"\n\x01\x7f"] == ["'a'", "'\\''", "'\"'", "'\\n'", "'\\x01'", "'\\x7f'"]
    assert go_quote_rune(0x80) == "\\u0080" and go_quote_rune(0xE9) == "é"
