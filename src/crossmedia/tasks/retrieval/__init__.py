"""Image–text retrieval: VSE0 / VSE++ (Faghri 2018) and order embeddings (Vendrov 2016) on a caption folder."""
