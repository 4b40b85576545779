"""Optional integrations, each an app or module of its own with its install extra:

* :mod:`.prometheus` (``django-cometchat[prometheus]``): metrics in prometheus_client's
  default registry, fed by the package's signals;
* :mod:`.healthcheck` (``django-cometchat[healthcheck]``): django-health-check checks.
"""
