"""The pages: plain templates whose JavaScript talks to the REST API and the notification socket.

Pages hold no data server-side; each script signs in with the token kept in sessionStorage.
"""
from django.conf import settings
from django.views.generic import TemplateView

class OpsPageView(TemplateView):
    template_name = "web/ops.html"

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "flower_url": settings.FLOWER_URL}
