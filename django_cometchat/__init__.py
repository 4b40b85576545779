"""django-cometchat: mirror CometChat conversations into your Django database."""

__version__ = "0.1.0"

# No NullHandler on purpose: on a site without LOGGING for "django_cometchat", Python's
# last-resort handler prints the package's warnings on stderr (a dead rate-budget cache, a
# failed sync), where an operator sees them. docs/operations.md shows a LOGGING setting.
