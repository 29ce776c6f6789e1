"""Database constraints shared by every model that stores a coordinate."""
from django.db import models


def coordinate_constraints(prefix: str, lat: str, lng: str) -> list[models.CheckConstraint]:
    """Latitude in [-90, 90] and longitude in [-180, 180], allowing both to be null together."""
    return [
        models.CheckConstraint(
            condition=models.Q(**{f"{lat}__isnull": True}) | models.Q(**{f"{lat}__gte": -90, f"{lat}__lte": 90}),
            name=f"{prefix}_{lat}_range",
        ),
        models.CheckConstraint(
            condition=models.Q(**{f"{lng}__isnull": True}) | models.Q(**{f"{lng}__gte": -180, f"{lng}__lte": 180}),
            name=f"{prefix}_{lng}_range",
        ),
    ]
