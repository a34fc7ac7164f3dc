"""Sample archive, reference-model training and the demo: what workers never run."""
