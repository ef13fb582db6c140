"""seatflow: Kafka stream-processing workers that build the SpecKit ticketing read models."""

__version__ = "0.1.0"
