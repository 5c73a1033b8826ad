"""Print the Python and library versions this interpreter sees, as JSON."""

import json
import sys

import joblib
import numpy
import pandas
import pyarrow
import scipy
import sklearn

print(
    json.dumps(
        {
            "python": ".".join(str(part) for part in sys.version_info[:3]),
            "prefix": sys.prefix,
            "sklearn": sklearn.__version__,
            "numpy": numpy.__version__,
            "pandas": pandas.__version__,
            "scipy": scipy.__version__,
            "joblib": joblib.__version__,
            "pyarrow": pyarrow.__version__,
        }
    )
)
