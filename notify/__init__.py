"""Delivery, shared by alerts and work orders: the notification, its outbox, the deliverer, storm grouping, channels."""
