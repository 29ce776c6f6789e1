"""ASGI entry point: the API and pages over HTTP, and the notification WebSocket, from one app."""
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup(set_prefix=False)  # as django.core.asgi.get_asgi_application does

from config.http_handler import SyncChainASGIHandler  # noqa: E402

django_asgi_app = SyncChainASGIHandler()

from channels.routing import ProtocolTypeRouter  # noqa: E402  (needs Django set up first)
from django.conf import settings  # noqa: E402

from dispatch.realtime.consumers import websocket_application  # noqa: E402

if settings.DISPATCH_EMBEDDED_WORKER:
    from dispatch.embedded import start_embedded_sweeper

    start_embedded_sweeper()

from dispatch.index import warm_index_in_background  # noqa: E402

# Before /readyz answers 200 the index holds every provider: no request waits for the snapshot.
warm_index_in_background()

application = ProtocolTypeRouter({"http": django_asgi_app, "websocket": websocket_application()})

from dispatch.gc_tuning import freeze_after_startup, warm_web  # noqa: E402

freeze_after_startup(warm=warm_web)
