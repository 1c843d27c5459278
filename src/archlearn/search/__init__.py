"""Architecture search: a genetic search over layered DAGs helped by a performance predictor.

>>> from archlearn.search import Genome, Predictor, fit_predictors, search  # doctest: +SKIP
"""

from archlearn.extras import require

# the predictors are scikit-learn models: say which extra to install instead of a bare ImportError
require("sklearn", "experiments", feature="archlearn.search")

from archlearn.search.genetic import (  # noqa: E402
    Genome,
    ffn_fitness,
    mutate,
    random_genome,
    search,
)
from archlearn.search.predictor import Predictor, fit_predictors, structure_dataset  # noqa: E402

__all__ = ["Genome", "Predictor", "ffn_fitness", "fit_predictors", "mutate", "random_genome",
           "search", "structure_dataset"]
