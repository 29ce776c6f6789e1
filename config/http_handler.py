"""The ASGI handler for HTTP: Django's, running each request's whole middleware chain and view in one thread hop.

Django's own ASGI handler builds an async middleware chain. Our views are sync, and so are most
middlewares, so a request hopped between the event loop and a worker thread at every middleware
method (`MiddlewareMixin.__acall__` wraps each in `sync_to_async`) and once more for the view:
about a dozen hops, a fifth of a web process's CPU under load (py-spy, docs/benchmarks.md, "Load").
This handler builds the chain a WSGI server runs (sync middleware, sync view) and calls it once
through `sync_to_async`, as `thread_sensitive` as Django's: the same thread rules, one hop.
"""
from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler


class SyncChainASGIHandler(ASGIHandler):
    def load_middleware(self, is_async=False):
        # The WSGI chain: every middleware and the view called in turn on one thread (an async view,
        # should one appear, is run by Django's sync path through async_to_sync).
        super().load_middleware(is_async=False)
        self._middleware_chain = sync_to_async(self._middleware_chain, thread_sensitive=True)
