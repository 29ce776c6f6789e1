"""The OpenAPI schema's error answers: each operation documents the 4xx it can give, in one shape.

Every error body is a JSON object: `{"code", "detail"}` for domain errors (api.errors),
`{"detail"}` for authentication and permission failures, `{"<field>": ["…"]}` for invalid
input. Which codes an operation lists follows from the view: 400 when it takes input,
401 when it authenticates, 403 when it checks permissions, 404 when it names a thing in
its path or pages, 413 when it takes a body, 429 when a throttle counts it. Domain answers particular to a route
(402, 409, 422, 503) are declared on the view with `ERROR`.
"""
from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers
from rest_framework.permissions import AllowAny

from api.path_ids import MAX_ID


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField(required=False, help_text="Machine-readable kind, e.g. conflict, rate_limited.")
    detail = serializers.CharField(required=False, help_text="What went wrong, for a person.")


ERROR = ErrorSerializer


# DRF writes times as HH:MM[:SS[.ffffff]] with no UTC offset, which JSON Schema's `time` format
# (RFC 3339, offset required) rejects: describe what is really sent.
TIME_PATTERN = r"^\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?$"


class DispatchAutoSchema(AutoSchema):
    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        if isinstance(field, serializers.TimeField):
            schema = {"type": "string", "pattern": TIME_PATTERN}
            return {**schema, "description": field.help_text} if field.help_text else schema
        return super()._map_serializer_field(field, direction, bypass_extensions)

    def get_operation(self, *args, **kwargs):
        operation = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        for parameter in operation.get("parameters", []):
            # Routes take any text as `{id}` and answer 404 for what is not an id (api/path_ids.py);
            # what names a thing is a positive integer, so say that (clients and fuzzers then send ids).
            if parameter["in"] == "path" and parameter["name"] == "id":
                parameter["schema"] = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
        responses = operation["responses"]
        for code in self._error_codes(operation):
            if str(code) not in responses:
                responses[str(code)] = self._get_response_for_code(ErrorSerializer, str(code))
        return operation

    def _error_codes(self, operation) -> list[int]:
        parameters = operation.get("parameters", [])
        codes = []
        if "requestBody" in operation or any(p["in"] in ("query", "header") for p in parameters):
            codes.append(400)
        if "requestBody" in operation:
            codes.append(413)  # over DATA_UPLOAD_MAX_MEMORY_SIZE
        if self.view.get_authenticators():
            codes.append(401)
        if not all(isinstance(permission, AllowAny) for permission in self.view.get_permissions()):
            codes.append(403)
        if any(p["in"] == "path" or p["name"] == "page" for p in parameters):
            codes.append(404)
        throttles = self.view.get_throttles()
        if any(getattr(t, "applies", lambda view, method: True)(self.view, self.method) for t in throttles):
            codes.append(429)
        return codes
