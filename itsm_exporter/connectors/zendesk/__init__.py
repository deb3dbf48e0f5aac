"""Zendesk Support: tickets with their SLA states, and CSAT ratings (docs/zendesk.md)."""
