"""Image captioning: CIDEr-D (as in pycocoevalcap) as evaluation metric and reinforcement-learning reward."""
