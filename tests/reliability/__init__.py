"""Reliability tests (issue #9): the Kafka flow under hostile input and a broker that restarts."""
