from __future__ import annotations

import pytest

from photovault.query.protocol import MAX_DEPTH, ProtocolError, parse_request


def bad_request_message(line: bytes) -> str:
    with pytest.raises(ProtocolError) as exc:
        parse_request(line)
    assert exc.value.code == "bad_request"
    return exc.value.message


def test_json_nested_beyond_the_recursion_limit_is_a_bad_request() -> None:
    assert "nested deeper" in bad_request_message(b"[" * 100_000 + b"\n")


def test_args_nested_beyond_the_recursion_limit_are_a_bad_request() -> None:
    line = b'{"v": 1, "op": "echo", "args": {"a": ' + b"[" * 100_000 + b"\n"
    assert "nested deeper" in bad_request_message(line)


def test_well_formed_json_nested_deeper_than_max_depth_is_a_bad_request() -> None:
    deep = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    line = b'{"v": 1, "op": "echo", "args": {"a": ' + deep + b"}}\n"
    assert "nested deeper" in bad_request_message(line)


def test_a_5000_digit_number_is_a_bad_request() -> None:
    line = b'{"v": 1, "op": "echo", "args": {"n": ' + b"9" * 5000 + b"}}\n"
    assert "digits" in bad_request_message(line)


def test_ordinary_numbers_and_nesting_still_parse() -> None:
    line = b'{"v": 1, "op": "search", "args": {"limit": -20, "f": {"a": [[1.5e3]]}}}\n'
    req = parse_request(line)
    assert req.args == {"limit": -20, "f": {"a": [[1500.0]]}}
