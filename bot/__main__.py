"""`python -m bot` runs the membot CLI."""

from bot.cli import main

main()
