"""Ids taken from URL paths: anything that is not a plausible id names nothing (404), never a 500."""
from dispatch.clean import integer_parse

MAX_ID = 2**63 - 1


def path_id(value) -> int:
    """The id as an int, or 0 (which matches no row) for text, negatives and out-of-range numbers."""
    try:
        number = integer_parse(value)
    except ValueError:
        return 0
    return number if 0 < number <= MAX_ID else 0
