"""Thin translations between chat platforms (Slack, Discord, a terminal) and the agent core."""
