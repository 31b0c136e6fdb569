"""What readers did with an issue, measured first-party and privacy first.

Tracked links (`/c/TOKEN/N`) and the opt-in pixel (`/o/TOKEN.gif`) record events per delivery;
machine requests are kept apart; subscribers can switch tracking off; raw events are folded
into counts after NEWSLETTER_EVENTS_RETENTION_DAYS. See docs/engagement.md.
"""
