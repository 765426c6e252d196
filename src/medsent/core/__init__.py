"""What every other floor shares: errors, labels, the typed config and the run folder."""
