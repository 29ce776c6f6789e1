"""The brief's routes, plus the OpenAPI schema and its browsable UI."""
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from api.views.accounts import LoginView, LogoutView, PasswordChangeView, RegisterView
from api.views.calls import JobCallView
from api.views.catalog import CategoryViewSet
from api.views.dues import OpsDuesView, OpsSettlementView, ProviderDuesPayView, ProviderDuesView
from api.views.invoices import JobCreditNoteView, JobInvoiceView, OpsRefundView
from api.views.jobs import JobViewSet
from api.views.offers import OfferViewSet
from api.views.ops import MetricsView, healthz, readyz
from api.views.ops_dashboard import OpsDashboardView
from api.views.payouts import OpsPayoutsBatchView, OpsPayoutsExportView, OpsPayoutsView, ProviderPayoutsView
from api.views.providers import (
    ProviderAvailabilityView,
    ProviderEarningsView,
    ProviderHoldsView,
    ProviderLocationView,
    ProviderMeView,
    ProviderViewSet,
)
from api.views.slots import AreaSlotsView, ProviderSlotsView
from api.views.socket_ticket import SocketTicketView
from api.views.telephony import JobCallBridgeView, TelephonyRouteView
from api.views.tokens import OpsTokenDetailView, OpsTokenListView, TokenDetailView, TokenListView
from api.views.wallet import WalletTopUpView, WalletView
from api.views.webhooks import WebhookDeliveryListView, WebhookDetailView, WebhookListView, WebhookResendView

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("services/categories", CategoryViewSet, basename="category")
router.register("services/jobs", JobViewSet, basename="job")
router.register("services/offers", OfferViewSet, basename="offer")
router.register("auth/providers", ProviderViewSet, basename="provider")

urlpatterns = [
    path("auth/register/", RegisterView.as_view(), name="register"),
    path("auth/login/", LoginView.as_view(), name="login"),
    path("auth/logout/", LogoutView.as_view(), name="logout"),
    path("auth/password/", PasswordChangeView.as_view(), name="password-change"),
    path("auth/tokens/", TokenListView.as_view(), name="token-list"),
    path("auth/tokens/<str:pk>/", TokenDetailView.as_view(), name="token-detail"),
    path("ops/tokens/", OpsTokenListView.as_view(), name="ops-token-list"),
    path("ops/tokens/<str:pk>/", OpsTokenDetailView.as_view(), name="ops-token-detail"),
    path("ops/webhooks/", WebhookListView.as_view(), name="ops-webhook-list"),
    path("ops/webhooks/<str:pk>/", WebhookDetailView.as_view(), name="ops-webhook-detail"),
    path("ops/webhooks/<str:pk>/deliveries/", WebhookDeliveryListView.as_view(), name="ops-webhook-deliveries"),
    path("ops/webhooks/<str:pk>/deliveries/<str:delivery_id>/resend/", WebhookResendView.as_view(),
         name="ops-webhook-resend"),
    path("auth/socket-ticket/", SocketTicketView.as_view(), name="socket-ticket"),
    path("providers/me/", ProviderMeView.as_view(), name="provider-me"),
    path("providers/me/location/", ProviderLocationView.as_view(), name="provider-location"),
    path("providers/me/availability/", ProviderAvailabilityView.as_view(), name="provider-availability"),
    path("providers/me/earnings/", ProviderEarningsView.as_view(), name="provider-earnings"),
    path("providers/me/dues/", ProviderDuesView.as_view(), name="provider-dues"),
    path("providers/me/dues/pay/", ProviderDuesPayView.as_view(), name="provider-dues-pay"),
    path("ops/dues/", OpsDuesView.as_view(), name="ops-dues"),
    path("ops/payouts/", OpsPayoutsView.as_view(), name="ops-payouts"),
    path("ops/payouts/batch/", OpsPayoutsBatchView.as_view(), name="ops-payouts-batch"),
    path("ops/payouts/export/", OpsPayoutsExportView.as_view(), name="ops-payouts-export"),
    path("providers/me/payouts/", ProviderPayoutsView.as_view(), name="provider-payouts"),
    path("ops/providers/<str:pk>/settlements/", OpsSettlementView.as_view(), name="ops-settlements"),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", MetricsView.as_view(), name="metrics"),
    path("ops/dashboard/", OpsDashboardView.as_view(), name="ops-dashboard"),
    path("wallet/", WalletView.as_view(), name="wallet"),
    path("wallet/topup/", WalletTopUpView.as_view(), name="wallet-topup"),
    path("services/jobs/<str:pk>/invoice/", JobInvoiceView.as_view(), name="job-invoice"),
    path("services/jobs/<str:pk>/call/", JobCallView.as_view(), name="job-call"),
    path("services/jobs/<str:pk>/call_bridge/", JobCallBridgeView.as_view(), name="job-call-bridge"),
    path("telephony/route/", TelephonyRouteView.as_view(), name="telephony-route"),
    path("services/jobs/<str:pk>/credit_notes/<str:note>/", JobCreditNoteView.as_view(), name="job-credit-note"),
    path("ops/jobs/<str:pk>/refunds/", OpsRefundView.as_view(), name="ops-refunds"),
    path("services/slots/", AreaSlotsView.as_view(), name="slots"),
    path("auth/providers/<str:pk>/slots/", ProviderSlotsView.as_view(), name="provider-slots"),
    path("providers/me/holds/", ProviderHoldsView.as_view(), name="provider-holds"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("", include(router.urls)),
]
