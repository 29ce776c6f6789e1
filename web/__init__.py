"""The customer, provider and ops pages, served by the same Django app as the API."""
