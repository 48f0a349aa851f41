"""The store: the only layer that speaks SQL. It knows nothing of rendering or SMTP.

Functions take a Session and leave commit/rollback to the caller (a service owns the
transaction), so a failed use case leaves the database as it was.
"""
