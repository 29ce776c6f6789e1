"""Django app config for the pages."""
from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "web"
