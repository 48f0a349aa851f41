"""Email bytes: building standards-correct messages, DKIM signing, and transport."""
