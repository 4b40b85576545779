"""CometChatClient over real HTTP: requests, pages, errors, the session, the wire's failures."""
