"""The admin pages and actions, the health page, and the admin in a real browser."""
