"""torch -> tinytrain -> linalg: the IR conversions of the pipeline."""
