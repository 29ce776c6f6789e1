"""GET /services/offers/: a provider's offers (?status=OFFERED for the live ones)."""
import django_filters
from rest_framework import mixins, viewsets

from api.permissions import IsProvider
from api.serializers.offers import OfferSerializer
from dispatch import selectors
from dispatch.models import Offer, OfferStatus


class OfferFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=OfferStatus.choices)

    class Meta:
        model = Offer
        fields = ["status"]


class OfferViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    permission_classes = [IsProvider]
    serializer_class = OfferSerializer
    filterset_class = OfferFilter

    queryset = Offer.objects.none()  # for the schema; requests use get_queryset

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return selectors.offers_for_provider(self.request.user)
