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
    queryset = ServiceCategory.objects.prefetch_related(Prefetch("items", queryset=ServiceItem.objects.order_by("id")))
