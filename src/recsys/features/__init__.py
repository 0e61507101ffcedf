"""FeatureEngineV2: the feature registry, user/item/cross features and their windows."""
