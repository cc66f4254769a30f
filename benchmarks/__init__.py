"""Side-by-side measurements behind the docs' tables: `make bench` and the other bench targets."""
