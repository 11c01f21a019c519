"""One module per area of the API; each holds its routes, a sync class and an async class."""
