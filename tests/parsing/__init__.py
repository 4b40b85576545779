"""Values and their parsers: ids, types, messages_types, webhook_types, conversation_filters."""
