"""What comes back from the mail system after sending: bounces (DSNs), spam complaints
(ARF), mail to the List-Unsubscribe address, and the relays' webhooks saying the same.

Every way in turns a report into `ReturnEvent`s (`events.py`); `record.apply` maps each
to its delivery and reader and does what it means, the same whatever the way in.
"""
