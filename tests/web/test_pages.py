"""The pages are served by Django with their scripts and the vendored Leaflet (no outside network)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]

PAGES = {
    "/signin/": b"signin.js",
    "/signup/": b"signup.js",
    "/customer/": b"customer.js",
    "/provider/": b"provider.js",
    "/ops/": b"ops.js",
}


@pytest.mark.parametrize("path", PAGES)
def test_each_page_is_served_with_its_script(client, path):
    response = client.get(path)

    assert response.status_code == 200
    assert PAGES[path] in response.content and b"client.js" in response.content
    assert b'name="viewport"' in response.content


def test_the_customer_map_uses_leaflet_from_our_own_static_files(client):
    page = client.get("/customer/").content

    assert b"/static/web/vendor/leaflet/leaflet.js" in page and b"/static/web/vendor/leaflet/leaflet.css" in page
    assert b"unpkg" not in page and b"cdn" not in page.lower()


def test_the_ops_page_links_to_flower_from_the_setting(client, settings):
    settings.FLOWER_URL = "https://flower.example.test/"

    assert b'href="https://flower.example.test/"' in client.get("/ops/").content


def test_the_home_page_links_to_the_pages(client):
    page = client.get("/").content

    for path in PAGES:
        assert f'href="{path}"'.encode() in page


def test_the_customer_page_books_from_a_list_of_free_starts(client):
    page = client.get("/customer/").content

    assert b'id="slot-date"' in page and b'id="slots"' in page and b'id="scheduled-at"' in page
    assert b'type="datetime-local"' not in page


def test_the_provider_page_has_the_week_and_its_editors(client):
    page = client.get("/provider/").content

    for part in (b'id="week"', b'id="hours-form"', b'id="time-zone"', b'id="time-off-form"'):
        assert part in page


def test_the_ops_page_links_to_flower_on_flower_port_without_a_flower_url():
    """`make up FLOWER_PORT=5601` serves Flower there, so the page links there (settings are read at start-up)."""
    env = {k: v for k, v in os.environ.items() if k not in ("FLOWER_URL", "FLOWER_PORT")}
    script = ("import django; django.setup(); from django.test import Client; "
              "print(Client().get('/ops/').content.decode())")

    page = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True,
                          env={**env, "FLOWER_PORT": "5601", "DJANGO_SETTINGS_MODULE": "config.settings"}).stdout

    assert 'id="flower-link" href="http://127.0.0.1:5601/"' in page


def test_the_sign_up_page_offers_both_roles_and_shows_errors_by_their_field(client):
    page = client.get("/signup/").content

    assert b'value="customer"' in page and b'value="provider"' in page
    for field in (b"name", b"phone", b"username", b"password"):
        assert b'id="error-' + field + b'"' in page
    assert b'href="/signup/"' in client.get("/signin/").content and b'href="/signup/"' in client.get("/").content
