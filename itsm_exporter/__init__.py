"""itsm-exporter: service-quality indicators from ITSM tickets and surveys, for Prometheus."""

__version__ = "0.1.0"
