"""Real time: the notification socket and everything that gets messages to it.

consumers.py (the `ws/notifications/` consumer: auth, replay in seq order, client frames),
socket_auth.py (tickets and tokens for the handshake, the Origin check), channel_layer.py (the
Redis pub/sub layer that reconnects), push.py (groups, the long-lived push loop, live and
credential pushes). What is said, and the event log itself, stay in dispatch/events.py.
"""
