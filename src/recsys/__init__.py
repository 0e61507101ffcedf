"""recsys: the domain library of a Kubernetes-native production recommender."""

__version__ = "0.1.0"
# The project's container image (image/Dockerfile), in one place: `make image` tags it so, the
# KFP components default to it (Settings.image), and the chart's values name the same
# (helm/recsys: image.repository, appVersion; tests/deploy/test_image_name.py keeps them equal).
IMAGE_REPOSITORY = "ghcr.io/recsys-project/recsys-python"
IMAGE = f"{IMAGE_REPOSITORY}:{__version__}"
