"""hildif: Human In the Loop Debugging using Influence Functions."""

__version__ = "0.1.0"
