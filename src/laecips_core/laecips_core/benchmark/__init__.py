"""The built-in drifting benchmark: tasks of an industrial scene rendered with ground-truth labels."""
