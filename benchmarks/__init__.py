"""Side-by-side measurements of every way to serve the model (`make bench`)."""
