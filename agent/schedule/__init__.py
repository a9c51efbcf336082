"""Timed events: reminders and recurring prompts an agent (or a person) schedules for a channel.

The Schedule table holds each schedule; APScheduler's SQL job store holds only its id and trigger, and one
process per platform (the leader) runs them. When one fires, the channel's agent gets a timed-event input and
its replies go out through the delivery registry.
"""
