"""Where events go besides the socket: one map from each event name to its outlets.

`on_event(event)` is called by `dispatch.events.emit` inside the transaction that wrote the
Event row, so whatever an outlet records (a webhook delivery to send) commits or rolls back
with the change it reports. (Being filled in: webhooks and the SMS/push adapter, issue 17.)
"""


def on_event(event) -> None:
    """Record this event's deliveries to its outlets; runs in the emitting transaction."""
