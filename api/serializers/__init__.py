"""DRF serializers: request parsing and response shapes, one module per resource."""
