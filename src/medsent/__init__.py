"""medsent: calibrated Negative / Neutral / Positive classifiers for patient drug reviews."""

__version__ = "0.1.0"
