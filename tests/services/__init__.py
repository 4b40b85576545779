"""The services (sync, refresh, owners, runs, message reads) and the storage under them."""
