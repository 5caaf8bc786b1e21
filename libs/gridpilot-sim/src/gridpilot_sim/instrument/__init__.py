"""The twin microscope: stateful instrument, timing model, cassette, imperfections, presets."""
