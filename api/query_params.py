"""A GET route's query string, checked by a serializer: its validated values, or a 400 naming the parameter."""


def query_params(serializer_class, request) -> dict:
    query = serializer_class(data=request.query_params.dict())
    query.is_valid(raise_exception=True)
    return dict(query.validated_data)
