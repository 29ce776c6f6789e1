"""GET /services/categories/: categories with their items and prices."""
from django.db.models import Prefetch
from rest_framework import mixins, viewsets
from rest_framework.permissions import AllowAny

from api.serializers.catalog import ServiceCategorySerializer
from dispatch.models import ServiceCategory, ServiceItem


class CategoryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    permission_classes = [AllowAny]
    serializer_class = ServiceCategorySerializer
    pagination_class = None
    lookup_value_regex = "[^/]+"  # any id reaches the view, which answers 404 JSON for nonsense
    queryset = ServiceCategory.objects.prefetch_related(Prefetch("items", queryset=ServiceItem.objects.order_by("id")))
