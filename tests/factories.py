"""factory_boy factories, one per model; the actors' fixtures in conftest build on them."""
from decimal import Decimal

import factory
from django.utils import timezone

from dispatch.models import ProviderProfile, Role, ServiceCategory, ServiceItem, User

DELHI = (28.6139, 77.2090)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    name = factory.Faker("name")
    phone = factory.Sequence(lambda n: f"+91 90000 {n:05d}")
    role = Role.CUSTOMER
    password = factory.PostGenerationMethodCall("set_password", "pass-word-123")

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class CustomerFactory(UserFactory):
    role = Role.CUSTOMER


class OpsFactory(UserFactory):
    role = Role.OPS
    is_staff = True


class CategoryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ServiceCategory
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Category {n}")
    slug = factory.Sequence(lambda n: f"category-{n}")


class ItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ServiceItem

    category = factory.SubFactory(CategoryFactory)
    name = factory.Sequence(lambda n: f"Item {n}")
    price = Decimal("500.00")


class ProviderProfileFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ProviderProfile
        skip_postgeneration_save = True

    user = factory.SubFactory(UserFactory, role=Role.PROVIDER)
    base_latitude = DELHI[0]
    base_longitude = DELHI[1]
    last_latitude = DELHI[0]
    last_longitude = DELHI[1]
    last_location_at = factory.LazyFunction(timezone.now)
    is_online = True
    service_radius_km = 10.0

    @factory.post_generation
    def categories(self, create, extracted, **kwargs):
        if create and extracted:
            self.categories.set(extracted)
            self.items.set(ServiceItem.objects.filter(category__in=extracted))


def make_provider(*, categories=(), **profile_fields) -> User:
    """A provider user with a profile serving `categories` (and all their items)."""
    return ProviderProfileFactory(categories=list(categories), **profile_fields).user
