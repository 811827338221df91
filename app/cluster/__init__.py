"""The service as a cluster on NATS JetStream (docs/scaling.md): members, partitions held, their state."""
