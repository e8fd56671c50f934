"""Ocean colour: sensors' bands and spectral resampling, the bio-optical forward model, and
the classical retrievals that an MDN is compared against."""
