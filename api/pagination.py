"""List pagination: `{"count", "next", "previous", "results"}`, 20 a page, `?page_size=` up to 100.

A job's chat pages by message id instead (`ChatPagination`).
"""
from rest_framework.pagination import BasePagination, PageNumberPagination
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param

from dispatch.errors import Invalid


class StandardPagination(PageNumberPagination):
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100


class ChatPagination(BasePagination):
    """A job's chat by message id: `{"count", "next", "results"}`, every page oldest to newest.

    No parameter: the latest `page_size` messages. `?before=<id>`: the latest ones older than
    that id (scrolling up). `?after=<id>`: the earliest ones newer than that id (catching up
    after a reconnect). `next` continues in the same direction, or is null at the end;
    `count` is the whole chat. Ids, not page numbers, so pages do not shift as messages arrive.
    """

    page_size = 50
    max_page_size = 100

    def paginate_queryset(self, queryset, request, view=None):
        before, after, size = self._params(request)
        self.request, self.count = request, queryset.count()
        if after is not None:
            rows = list(queryset.filter(id__gt=after).order_by("id")[: size + 1])
            more, rows = len(rows) > size, rows[:size]
            self.next_cursor = ("after", rows[-1].pk) if more else None
        else:
            older = queryset.filter(id__lt=before) if before is not None else queryset
            rows = list(older.order_by("-id")[: size + 1])
            more, rows = len(rows) > size, rows[:size][::-1]
            self.next_cursor = ("before", rows[0].pk) if more else None
        return rows

    def _params(self, request) -> tuple[int | None, int | None, int]:
        values = {}
        for name, low, high in (("before", 1, None), ("after", 0, None), ("page_size", 1, self.max_page_size)):
            raw = request.query_params.get(name)
            if raw is None:
                continue
            try:
                value = int(raw)
            except ValueError:
                value = None
            if value is None or value < low or (high is not None and value > high):
                bounds = f"from {low} to {high}" if high is not None else f"at least {low}"
                raise Invalid(f"{name} must be a whole number {bounds}.", field=name)
            values[name] = value
        if "before" in values and "after" in values:
            raise Invalid("Give before or after, not both.", field="after")
        return values.get("before"), values.get("after"), values.get("page_size", self.page_size)

    def get_paginated_response(self, data):
        next_url = None
        if self.next_cursor is not None:
            name, value = self.next_cursor
            url = remove_query_param(self.request.build_absolute_uri(), "after" if name == "before" else "before")
            next_url = replace_query_param(url, name, value)
        return Response({"count": self.count, "next": next_url, "results": data})
