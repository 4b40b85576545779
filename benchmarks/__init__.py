"""Benchmarks for django-cometchat: scripts that print figures (not collected by pytest).

Run them from the repository root, for example::

    python -m benchmarks.bench_list_conversations
    python -m benchmarks.bench_sync

See ``docs/benchmarks.md`` for the figures and what they mean.
"""
