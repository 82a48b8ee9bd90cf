"""Quality gates for contributed datasets: the registry, the contribution manifest and the GX gate."""
