"""Apache Airflow provider for the Fluents and Tines APIs."""

__version__ = "0.1.0"
