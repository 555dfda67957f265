"""The site's URLs plus one view that fails, to see the page a server error shows."""

from django.urls import path

from edumood_site.urls import urlpatterns as site_urls


def fail(request):
    raise RuntimeError("boom in /srv/edumood/secret_module.py")


urlpatterns = [path("fail/", fail), *site_urls]
