"""Root URL map: the REST API (brief's routes), the OpenAPI schema and the pages."""
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("api.urls")),
    path("", include("web.urls")),
]
