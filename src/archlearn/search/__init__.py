"""Architecture search: a genetic search over layered DAGs helped by a performance predictor.

>>> from archlearn.search import Genome, Predictor, fit_predictors, search  # doctest: +SKIP
"""

from archlearn.search.genetic import Genome, ffn_fitness, mutate, random_genome, search
from archlearn.search.predictor import Predictor, fit_predictors, structure_dataset

__all__ = ["Genome", "Predictor", "ffn_fitness", "fit_predictors", "mutate", "random_genome",
           "search", "structure_dataset"]
