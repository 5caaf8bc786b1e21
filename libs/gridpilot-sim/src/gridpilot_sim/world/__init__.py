"""The specimen: a grid world from a seed — mesh, film, holes, ice, particles — and its truth."""
