"""django-cometchat: mirror CometChat conversations into your Django database."""

__version__ = "0.1.0"
