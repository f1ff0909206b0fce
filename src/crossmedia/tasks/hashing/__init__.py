"""Deep hashing: CSQ / hash centers (Yuan 2020) for images and video clips."""
