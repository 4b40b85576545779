"""Prometheus metrics for django-cometchat (``pip install django-cometchat[prometheus]``).

Add ``"django_cometchat.contrib.prometheus"`` to ``INSTALLED_APPS``: its ``ready()`` connects
receivers to the package's signals (:mod:`django_cometchat.signals`) that feed these metrics, in
prometheus_client's default registry (``prometheus_client.REGISTRY``), which whatever exports
the site's metrics (``django-prometheus``, ``prometheus_client.make_wsgi_app``, a multiprocess
collector) then serves:

* ``cometchat_upstream_requests_total{endpoint,status}``: attempts of requests to CometChat;
  ``endpoint`` the method and path template (``GET /users/{uid}/conversation``), ``status``
  the HTTP status or ``error`` (no answer: a connection failure or timeout);
* ``cometchat_sync_runs_total{trigger,outcome}``: finished ``SyncRun`` rows; ``outcome``
  succeeded, failed or abandoned;
* ``cometchat_sync_duration_seconds{trigger}``: histogram of their durations;
* ``cometchat_webhook_events_total{trigger,status}``: webhook events that reached an end
  (processed, failed, ignored); a trigger CometChat does not document is counted as ``other``;
* ``cometchat_webhook_lag_seconds``: histogram of the seconds from CometChat's event time to
  the event's end (events without an event time are not in it);
* ``cometchat_rate_budget_used_ratio``: requests counted in the shared rate budget's current
  window over ``REQUESTS_PER_MINUTE``, read from the budget's cache at each scrape (absent when
  the budget is off or its cache fails).

No label ever holds a UID, a conversation id or a GUID: every label has a small, fixed set of
values. See docs/operations.md for the queries.
"""
