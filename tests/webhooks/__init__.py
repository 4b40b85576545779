"""CometChat's webhook: the view, the events it records and their processing."""
