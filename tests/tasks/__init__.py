"""Background work through Django's Tasks framework, in-process and with real workers."""
