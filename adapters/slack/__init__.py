"""The Slack adapter: Bolt listeners that turn Slack events, uploads and slash commands into ChatCore calls,
and the agent's Markdown replies into Slack messages."""
