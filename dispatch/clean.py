"""What input may be, in one place for REST bodies, query strings and socket frames alike.

Numbers are JSON numbers (never `true`/`false`) or text in ASCII decimal notation: Python's
`float("١٢")` is 12.0 and `float(True)` is 1.0, so a latitude `true` or Arabic-Indic digits
would otherwise be stored as if they meant something. Text holds no NUL (PostgreSQL cannot
store it) and no lone UTF-16 surrogate (it cannot be encoded, so a log line, a cache key or
the database would fail on it). The API's fields (`api.serializers.fields`) and the services
that take frames straight from a socket (chat, location) call these functions; each raises
ValueError with the sentence to show, and the caller names the field.
"""
import math
import re

ASCII_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
ASCII_INTEGER = re.compile(r"[+-]?\d+", re.ASCII)
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# Text longer than this is not a number anyone means (and int() of it is slow).
MAX_NUMBER_TEXT = 100


def number_parse(value, *, text: bool = True) -> float:
    """A finite float from a JSON number or (if `text`: query strings, forms) ASCII decimal text; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError("A number is required, not true or false.")
    if isinstance(value, str) and text:
        text = value.strip()
        if len(text) > MAX_NUMBER_TEXT or not ASCII_NUMBER.fullmatch(text):
            raise ValueError("A number is required (digits 0-9, optionally a sign, a point and an exponent).")
        value = text
    elif not isinstance(value, (int, float)):
        raise ValueError("A number is required.")
    try:
        number = float(value)
    except OverflowError:
        raise ValueError("The number is out of range.") from None
    if not math.isfinite(number):
        raise ValueError("A finite number is required.")
    return number


def integer_parse(value) -> int:
    """An int from a JSON integer (or a float with no fraction) or ASCII digit text; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError("A whole number is required, not true or false.")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("A whole number is required.")
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if len(text) > MAX_NUMBER_TEXT or not ASCII_INTEGER.fullmatch(text):
            raise ValueError("A whole number is required (digits 0-9, optionally a sign).")
        return int(text)
    raise ValueError("A whole number is required.")


def text_check(text: str) -> str:
    """`text` unchanged if it can be stored and encoded; ValueError naming what is wrong otherwise."""
    if "\x00" in text:
        raise ValueError("Text may not contain NUL characters.")
    if LONE_SURROGATE.search(text):
        raise ValueError("Text contains a lone UTF-16 surrogate, which is not a character.")
    return text
