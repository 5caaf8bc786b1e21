"""High-magnification movies: CTF, ice, particles, beam-induced motion, counting detector."""
