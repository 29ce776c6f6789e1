"""The JSON parser every route uses: refuses what would otherwise reach a view and fail there.

Nesting deeper than MAX_DEPTH (Python's decoder hits its recursion limit near 1,000 and
would answer 500) and text with lone UTF-16 surrogates (which cannot be encoded, so a
throttle key, a log line or PostgreSQL would fail on them) are a 400 here, once, for
every route.
"""
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from dispatch.clean import LONE_SURROGATE

MAX_DEPTH = 32


def _check(data) -> None:
    """Walk the parsed body without recursion: depth and text."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ParseError(f"JSON nested deeper than {MAX_DEPTH} levels.")
        if isinstance(value, str):
            if LONE_SURROGATE.search(value):
                raise ParseError("Text contains a lone UTF-16 surrogate, which is not a character.")
        elif isinstance(value, dict):
            stack.extend((k, depth + 1) for k in value)
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)


class CheckedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(f"JSON nested deeper than {MAX_DEPTH} levels.") from None
        _check(data)
        return data
