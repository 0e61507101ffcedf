"""recsys: the domain library of a Kubernetes-native production recommender."""

__version__ = "0.1.0"
