"""The project's shared package: event contracts, topics, settings, Kafka and MongoDB plumbing, logging."""
