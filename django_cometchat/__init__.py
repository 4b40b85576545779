"""django-cometchat: mirror CometChat conversations into your Django database."""

import logging

__version__ = "0.1.0"

# A library logs; the host decides where it goes. Without this, a host that configured no
# handler for "django_cometchat" would get Python's last-resort handler printing every warning
# on stderr (a command's failure would show twice: the log line and the command's own message).
logging.getLogger(__name__).addHandler(logging.NullHandler())
