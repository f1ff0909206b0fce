"""Video summarisation: SUM-GDA (Li 2020) and Cycle-SUM (Yuan 2019) with the SumMe/TVSum protocol."""
