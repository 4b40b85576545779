"""The shipped fake CometChat server (django_cometchat.testing) against API.md."""
