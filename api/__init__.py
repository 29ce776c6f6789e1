"""HTTP in: DRF serializers, views, permissions and routes (the brief's URLs)."""
