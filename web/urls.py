"""Page routes: the home page, sign-in, and the customer, provider and ops pages."""
from django.urls import path
from django.views.generic import TemplateView

from web.views import OpsPageView

urlpatterns = [
    path("", TemplateView.as_view(template_name="web/home.html"), name="home"),
    path("signin/", TemplateView.as_view(template_name="web/signin.html"), name="signin"),
    path("signup/", TemplateView.as_view(template_name="web/signup.html"), name="signup"),
    path("customer/", TemplateView.as_view(template_name="web/customer.html"), name="customer-page"),
    path("provider/", TemplateView.as_view(template_name="web/provider.html"), name="provider-page"),
    path("ops/", OpsPageView.as_view(), name="ops-page"),
]
