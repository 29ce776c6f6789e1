"""The pages: plain templates whose JavaScript talks to the REST API and the notification socket.

Pages hold no data server-side; each script signs in with the token kept in sessionStorage.
"""
import os

from django.conf import settings
from django.views.generic import TemplateView

DEFAULT_FLOWER_URL = "http://127.0.0.1:5555/"


def flower_url() -> str:
    """Where ops find Flower: the FLOWER_URL setting, else the environment, else `make up`'s port."""
    return getattr(settings, "FLOWER_URL", None) or os.environ.get("FLOWER_URL") or DEFAULT_FLOWER_URL


class OpsPageView(TemplateView):
    template_name = "web/ops.html"

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "flower_url": flower_url()}
