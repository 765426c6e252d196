"""Loading a saved run and answering: prediction, file scoring, the service, export formats."""
