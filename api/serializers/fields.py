"""The API's input fields: numbers, ids and times as `dispatch.clean` allows them, lists bounded before any query.

DRF's own FloatField, IntegerField and DecimalField accept `true` as 1 and Arabic-Indic digits
as numbers; its DateTimeField accepts a bare date as midnight; its PrimaryKeyRelatedField with
many=True runs one query per id before any length check. Input serializers use these instead.
"""
import re
from decimal import Decimal

from rest_framework import serializers

from dispatch.clean import ASCII_NUMBER, MAX_NUMBER_TEXT, integer_parse, number_parse
from dispatch.prepared import Prepared

MAX_ID = 2**63 - 1
# ISO 8601 date and time (a bare date is not a moment).
DATE_AND_TIME_SHAPE = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}", re.ASCII)


class _CleanedBy:
    """A field whose input goes through one `dispatch.clean` parser; its ValueError is the field's error."""

    parse = None  # a staticmethod: the parser

    def to_internal_value(self, data):
        try:
            return self.parse(data)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None


class StrictFloatField(_CleanedBy, serializers.FloatField):
    parse = staticmethod(number_parse)


class StrictIntegerField(_CleanedBy, serializers.IntegerField):
    parse = staticmethod(integer_parse)


class StrictDecimalField(serializers.DecimalField):
    def to_internal_value(self, data):
        if isinstance(data, bool):
            raise serializers.ValidationError("A number is required, not true or false.")
        if isinstance(data, str) and (len(data) > MAX_NUMBER_TEXT or not ASCII_NUMBER.fullmatch(data.strip())):
            raise serializers.ValidationError("A number is required (digits 0-9, optionally a sign and a point).")
        if isinstance(data, float):
            data = Decimal(repr(data))
        return super().to_internal_value(data)


class StrictDateTimeField(serializers.DateTimeField):
    """An ISO 8601 date and time; a bare date, or a moment past year 9999 in UTC, is refused."""

    def __init__(self, **kwargs):
        super().__init__(input_formats=["iso-8601"], **kwargs)

    def to_internal_value(self, value):
        if not isinstance(value, str) or not DATE_AND_TIME_SHAPE.match(value):
            raise serializers.ValidationError("A date and time is required, as YYYY-MM-DDThh:mm[:ss][±hh:mm|Z].")
        try:
            return super().to_internal_value(value)
        except OverflowError:
            raise serializers.ValidationError("The date is out of range.") from None


class CoordinateField(StrictFloatField):
    def __init__(self, *, bound: float, **kwargs):
        super().__init__(min_value=-bound, max_value=bound, **kwargs)


def latitude_field(**kwargs) -> CoordinateField:
    return CoordinateField(bound=90, **kwargs)


def longitude_field(**kwargs) -> CoordinateField:
    return CoordinateField(bound=180, **kwargs)


def id_field(**kwargs) -> StrictIntegerField:
    return StrictIntegerField(min_value=1, max_value=MAX_ID, **kwargs)


# Rows by id from a whole table (a field's queryset without filters), prepared once per model
# (dispatch/prepared.py): a booking looks up its category and items on every request.
_ROW_BY_ID: dict[type, Prepared] = {}
_ROWS_BY_IDS: dict[type, Prepared] = {}


def _whole_table(queryset) -> bool:
    """The field reads its model's whole table (no filter of its own or of the default manager)."""
    query = queryset.query
    return (not query.where and query.low_mark == 0 and query.high_mark is None
            and not queryset.model._default_manager.all().query.where)


def _row_by_id(queryset, pk: int):
    model = queryset.model
    if model not in _ROW_BY_ID:
        _ROW_BY_ID[model] = Prepared(lambda pk: model._default_manager.filter(pk=pk).order_by()[:1], pk=int)
    return _ROW_BY_ID[model].first(pk=pk)


def _rows_by_ids(queryset, ids: list[int]) -> dict:
    model = queryset.model
    if model not in _ROWS_BY_IDS:
        _ROWS_BY_IDS[model] = Prepared(lambda ids: model._default_manager.filter(pk__any_of=ids).order_by(), ids=list)
    return {row.pk: row for row in _ROWS_BY_IDS[model].all(ids=ids)}


class StrictPrimaryKeyRelatedField(serializers.PrimaryKeyRelatedField):
    """One row by id; the id must be a whole number in range before it reaches the database."""

    def to_internal_value(self, data):
        try:
            pk = integer_parse(data)
        except ValueError:
            self.fail("incorrect_type", data_type=type(data).__name__)
        if not 0 < pk <= MAX_ID:
            self.fail("does_not_exist", pk_value=pk)
        queryset = self.get_queryset()
        if not _whole_table(queryset):
            return super().to_internal_value(pk)
        row = _row_by_id(queryset, pk)
        if row is None:
            self.fail("does_not_exist", pk_value=pk)
        return row


class RowsByIdField(serializers.ListField):
    """A list of ids answered as their rows, in the order given without repeats: its length is
    checked first and the rows come in one query, so a 40,000-id list costs nothing to refuse."""

    def __init__(self, *, queryset, max_length: int, **kwargs):
        self.queryset = queryset
        super().__init__(child=id_field(), max_length=max_length, **kwargs)

    def to_internal_value(self, data):
        if isinstance(data, list) and len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        ids = list(dict.fromkeys(super().to_internal_value(data)))
        if _whole_table(self.queryset):
            rows = _rows_by_ids(self.queryset, ids)
        else:
            rows = self.queryset.in_bulk(ids)
        missing = [i for i in ids if i not in rows]
        if missing:
            raise serializers.ValidationError(f"Unknown ids: {', '.join(map(str, missing[:10]))}.")
        return [rows[i] for i in ids]
