"""The REST API: a thin DRF adapter over ``django_cometchat.services``.

Mount it with ``path("cometchat/", include("django_cometchat.urls"))``; see ``docs/api.md``.
"""
