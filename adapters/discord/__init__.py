"""The Discord adapter: gateway events and slash commands in, ChatCore calls, Discord messages out."""
