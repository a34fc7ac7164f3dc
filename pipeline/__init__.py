"""cam-audit pipeline: entry points, options and graph assembly."""
