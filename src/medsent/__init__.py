"""medsent: calibrated Negative / Neutral / Positive classifiers for patient drug reviews.

import medsent
model = medsent.load("runs/svm")
model.predict(["No side effects and it works"])
"""

__version__ = "0.1.0"

from medsent.api import Model, evaluate, load, resume, train
from medsent.errors import ConfigError, DataError, MedsentError, RunError

__all__ = [
    "ConfigError",
    "DataError",
    "MedsentError",
    "Model",
    "RunError",
    "__version__",
    "evaluate",
    "load",
    "resume",
    "train",
]
