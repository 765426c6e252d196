"""medsent: calibrated Negative / Neutral / Positive classifiers for patient drug reviews.

import medsent
model = medsent.load("runs/svm")
model.predict(["No side effects and it works"])
"""

from medsent._version import __version__
from medsent.core.errors import ConfigError, DataError, MedsentError, RunError
from medsent.interfaces.api import Model, calibrate, demo_data, evaluate, load, resume, train

__all__ = [
    "ConfigError",
    "DataError",
    "MedsentError",
    "Model",
    "RunError",
    "__version__",
    "calibrate",
    "demo_data",
    "evaluate",
    "load",
    "resume",
    "train",
]
